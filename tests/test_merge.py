"""Tests of the merge's options: the same-sample rule unchanged since the base
refactor (bit for bit), cross-fitted weights (their formula, and unbiased where
the same-sample rule is not), and the near-discontinuity detection."""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vograd
from vograd.estimators.jumps import JUMP_RATIO, trapezoid_ratio
from vograd.estimators.reduce import Samples, cross_fit_estimate, merged_estimate
from vograd.tasks.toys import DoubleWell, LinearQuadratic, QuadraticLearningRate

BASE = np.load(Path(__file__).parent / "data" / "estimators_base.npz")
LQ = LinearQuadratic.random(jax.random.key(0), horizon=8, noise=0.2)
LQ_THETA = jnp.array([0.3, -0.5, 0.2])

# The configurations of tests/data/make_estimators_base.py (run at the base commit).
BASE_ESTIMATORS = {
    "merged": vograd.Merged(num_pairs=6, sigma=0.5, window=4),
    "merged_total": vograd.Merged(num_pairs=6, sigma=0.5, window=4, weighting="total"),
    "merged_full": vograd.Merged(num_pairs=6, sigma=0.5),
    "es": vograd.EvolutionStrategies(num_pairs=6, sigma=0.5, window=4),
    "rp": vograd.Reparameterization(num_pairs=6, sigma=0.5, window=4, burn_in=2),
    "tbptt": vograd.TruncatedBackprop(num_particles=6, window=4),
    "pes": vograd.PersistentES(num_pairs=6, sigma=0.5, window=3),
    "full_es": vograd.FullES(num_pairs=6, sigma=0.5),
}


# Forward-only windowed estimators of antithetic pairs run each pair as a nested vmap since
# the base (`population.run_population`'s ``shared_pairs``): the same computation, batched
# in another shape, so their numbers may differ from the base in float32 rounding only.
SHARED_PAIRS = {"es", "full_es"}


@pytest.mark.parametrize("name", sorted(BASE_ESTIMATORS))
def test_estimates_equal_the_base_commit_bit_for_bit(name):
    # Three consecutive windows (persistent state carried), default options:
    # every gradient, diagnostic and state leaf equals the stored value exactly
    # (the pair-sharing estimators: within float32 rounding, a few ulps relative).
    est = BASE_ESTIMATORS[name]
    f = eqx.filter_jit(est.estimate)
    state = est.init(LQ, LQ_THETA, jax.random.key(1))
    for k in range(3):
        g, state, d = f(LQ, LQ_THETA, state, jax.random.key(10 + k))
        got = {"grad": g, "loss": d.loss}
        got.update({f"variance/{c}": v for c, v in d.variance.items()})
        got.update({f"weight/{c}": v for c, v in d.weight.items()})
        for i, x in enumerate(jax.tree.leaves(state)):
            got[f"state/{i}"] = x
        for key, value in got.items():
            want = BASE[f"{name}/{k}/{key}"]
            if name in SHARED_PAIRS and np.issubdtype(want.dtype, np.floating):
                np.testing.assert_allclose(np.asarray(value), want, rtol=2e-6, atol=1e-6,
                                           err_msg=key)
            else:
                np.testing.assert_array_equal(np.asarray(value), want, key)


def stored_samples():
    return Samples(
        {"rp": jnp.asarray(BASE["reduce/rp"]), "es": jnp.asarray(BASE["reduce/es"])},
        jnp.asarray(BASE["reduce/loss"]),
        jnp.asarray(BASE["reduce/keep"]),
    )


@pytest.mark.parametrize("weighting", ["per_element", "total"])
def test_same_sample_reduction_equals_the_base_commit(weighting):
    samples = stored_samples()
    for est in (
        vograd.Merged(num_pairs=7, weighting=weighting),
        vograd.Merged(num_pairs=7, weighting=weighting, weights="same_samples"),
    ):
        g, d = est.reduce(samples)
        np.testing.assert_array_equal(g, BASE[f"reduce/{weighting}/grad"])
        np.testing.assert_array_equal(d.weight["rp"], BASE[f"reduce/{weighting}/weight_rp"])
    # The recipes keep the authors' rule explicitly.
    from vograd.recipes import metz2019

    est = metz2019.Metz2019().estimator
    assert (est.weights, est.detect_jumps) == ("same_samples", False)


@pytest.mark.parametrize("weighting", ["per_element", "total"])
def test_cross_fit_weights_leave_each_pair_out(weighting):
    samples = stored_samples()
    rp, es = (np.asarray(samples.components[k], np.float64) for k in ("rp", "es"))
    keep = np.asarray(samples.keep)

    def weight_rp(mask):
        v_rp, v_es = rp[mask].var(0, ddof=1) + 1e-8, es[mask].var(0, ddof=1) + 1e-8
        if weighting == "total":
            v_rp, v_es = v_rp.sum(), v_es.sum()
        return (1 / v_rp) / (1 / v_rp + 1 / v_es)

    merged = []
    for i in np.flatnonzero(keep):
        others = keep & (np.arange(len(keep)) != i)
        w = weight_rp(others)
        merged.append(w * rp[i] + (1 - w) * es[i])
    g, d = cross_fit_estimate(samples, weighting)
    np.testing.assert_allclose(g, np.mean(merged, axis=0), rtol=1e-5)
    np.testing.assert_allclose(d.weight["rp"] + d.weight["es"], 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="num_pairs >= 3"):
        vograd.Merged(num_pairs=2, weights="cross_fit")
    with pytest.raises(ValueError, match="weights"):
        vograd.Merged(weights="median")


def test_no_pair_of_a_smooth_system_is_flagged_as_a_jump():
    # rho <= 1/2 up to third order (vograd/estimators/jumps.py), below the 0.75
    # threshold with room for the higher orders, even at a large sigma.
    with jax.enable_x64(True):
        cases = [
            (LinearQuadratic.random(jax.random.key(0), horizon=20, noise=0.2),
             jnp.array([0.3, -0.5, 0.2]), 0.5),
            (QuadraticLearningRate(horizon=20, a=[0.5, 1.0, 1.5], w0=[1.0, 1.0, 1.0]),
             jnp.asarray(0.4), 0.1),
            (DoubleWell(), jnp.asarray(0.3), 0.05),
        ]
        maxima = []
        for system, theta, sigma in cases:
            est = vograd.Merged(num_pairs=256, sigma=sigma)
            samples, _ = eqx.filter_jit(est.per_sample)(system, theta, None, jax.random.key(3))
            maxima.append(float(np.max(trapezoid_ratio(samples, sigma))))
    # Measured maxima: 8e-14 (LinearQuadratic: quadratic, exact up to rounding),
    # 0.585 (QuadraticLearningRate, a degree-40 polynomial: higher orders), 0.19 (DoubleWell).
    assert max(maxima) < JUMP_RATIO, maxima


def repeated_estimates(est, system, theta, repeats, key):
    """Returns ``[repeats]`` independent estimates (full episodes) and their mean es weight."""
    f = eqx.filter_jit(jax.vmap(lambda k: est.estimate(system, theta, None, k)[::2]))
    g, diag = f(jax.random.split(jax.random.key(key), repeats))
    return np.asarray(g, np.float64), float(np.mean(diag.weight["es"]))


def test_jump_detection_recovers_the_gradient_the_merge_misses():
    # The terminal loss of a 100-step double well drops by ~0.6 at momentum
    # ~0.589, two sigmas above theta = 0.49: most draws have no pair across,
    # and the end gradients of every pair are ~0 (both basins converged).
    system, theta, sigma = DoubleWell(terminal=True), jnp.asarray(0.49), 0.05
    with jax.enable_x64(True):
        target = system.smoothed_grad(0.49, sigma)  # -0.664 (Stein quadrature)
    results = {}
    for name, est in {
        "merged": vograd.Merged(num_pairs=8, sigma=sigma),
        "jumps": vograd.Merged(num_pairs=8, sigma=sigma, detect_jumps=True),
        "cross_fit_jumps": vograd.Merged(num_pairs=8, sigma=sigma, weights="cross_fit",
                                         detect_jumps=True),
    }.items():
        g, w_es = repeated_estimates(est, system, theta, 200, key=1)
        z = (g.mean() - target) / (g.std(ddof=1) / np.sqrt(len(g)))
        results[name] = (g.mean(), z, w_es)
    mean, z, _ = results["merged"]
    assert abs(mean) < 1e-3 < 0.5 < abs(target)  # blind: ~0 in every draw
    for name in ("jumps", "cross_fit_jumps"):
        mean, z, w_es = results[name]
        assert abs(z) < 4.0, (name, mean, target, z)


def test_cross_fit_removes_the_same_sample_bias_on_truncated_windows():
    # Influence balancing, episodes of 100 in windows of 10, 8 pairs, against the
    # expected truncated gradient (both components are unbiased for it: the
    # window losses are quadratic in theta and the start states linear in it).
    from vograd.benchmarks.estimators.cases import influence_truncated_grad
    from vograd.tasks.toys import InfluenceBalancing

    system, theta, episodes = InfluenceBalancing(horizon=100), jnp.asarray(0.5), 400
    target = influence_truncated_grad(system, 0.5, 10)  # -1.776
    keys = jax.random.split(jax.random.key(0), episodes)
    z = {}
    for weights in ("same_samples", "cross_fit"):
        est = vograd.Merged(num_pairs=8, sigma=0.1, window=10, weights=weights)
        state = jax.vmap(lambda k: est.init(system, theta, k))(keys)
        f = eqx.filter_jit(jax.vmap(lambda s, k: est.estimate(system, theta, s, k)[:2]))
        total = 0.0
        for w in range(10):
            g, state = f(state, jax.vmap(lambda k: jax.random.fold_in(k, w + 1))(keys))
            total = total + np.asarray(g, np.float64)
        g = total / 10  # per-episode means
        z[weights] = (g.mean() - target) / (g.std(ddof=1) / np.sqrt(episodes))
    assert z["same_samples"] > 4.0, z
    assert abs(z["cross_fit"]) < 4.0, z
