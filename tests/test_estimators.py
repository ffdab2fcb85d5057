"""Tests of the windowed estimators: unbiasedness against closed forms, the
merge weights, truncated-mode bookkeeping (continuation, burn-in, dynamic
length), reproducibility, non-finite samples and validation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vograd
from vograd.tasks.toys import LinearQuadratic, QuadraticLearningRate
from vograd.estimators.reduce import Samples, mean_estimate, merged_estimate
from vograd.system import UnrolledSystem

K_SE = 4.0  # two-sided 4-SE bands: a false alarm has probability ~6e-5 per element


# One jitted entry point each: the estimator is an argument (its static config
# is part of the cache key), so tests that share a configuration share a
# compilation. Compiles dominate this file's runtime.
TRACES = []  # appended to at trace time only: counts compilations of `estimate`


@eqx.filter_jit
def estimate(est, system, theta, state, key, length=None):
    TRACES.append(est)
    return est.estimate(system, theta, state, key, length=length)


@eqx.filter_jit
def per_sample(est, system, theta, state, key):
    return est.per_sample(system, theta, state, key)


jit_mean_estimate = eqx.filter_jit(mean_estimate)
jit_merged_estimate = eqx.filter_jit(merged_estimate)


def assert_within_se(samples, reference, what):
    """Mean of the [N, ...] samples within K_SE standard errors of the reference."""
    samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
    reference = np.asarray(reference, np.float64).reshape(-1)
    se = samples.std(0, ddof=1) / np.sqrt(len(samples))
    # Deterministic estimators have SE 0: allow float32 rounding instead.
    tol = K_SE * se + 1e-4 * np.abs(reference) + 1e-5
    err = np.abs(samples.mean(0) - reference)
    assert np.all(err < tol), f"{what}: mean {samples.mean(0)} vs {reference}, se {se}"


LQ = LinearQuadratic.random(jax.random.key(0), horizon=8, noise=0.2)
# One small truncated configuration shared by the bookkeeping tests (one compile).
M4 = vograd.Merged(num_pairs=4, sigma=1.0, window=8)
FULL = jnp.asarray(8)  # always pass `length` as an array: one signature, one compile
LQ_THETA = jnp.array([0.3, -0.5, 0.2])
QLR = QuadraticLearningRate(horizon=8, a=[0.5, 1.0, 1.5], w0=[1.0, 1.0, 1.0])
QLR_THETA = jnp.asarray(0.4)
SIGMA = 0.1


def smoothed_reference(system, theta):
    if isinstance(system, LinearQuadratic):
        return system.smoothed_grad(theta, SIGMA)
    return system.smoothed_grad(float(theta), SIGMA)


def plain_reference(system, theta):
    if isinstance(system, LinearQuadratic):
        return system.window_grad(theta)
    return system.true_grad(float(theta))


# (estimator, reference): every single-component estimator on a full episode
# (window = horizon from a fresh particle is a full episode too).
SINGLE = [
    (lambda h: vograd.Reparameterization(num_pairs=1024, sigma=SIGMA), smoothed_reference),
    (lambda h: vograd.EvolutionStrategies(num_pairs=1024, sigma=SIGMA, window=h),
     smoothed_reference),
    (lambda h: vograd.FullES(num_pairs=1024, sigma=SIGMA), smoothed_reference),
    (lambda h: vograd.PersistentES(num_pairs=1024, sigma=SIGMA, window=h), smoothed_reference),
    (lambda h: vograd.TruncatedBackprop(num_particles=256, window=h), plain_reference),
    (lambda h: vograd.FullBackprop(num_particles=256), plain_reference),
]


@pytest.mark.parametrize("system,theta", [(LQ, LQ_THETA), (QLR, QLR_THETA)], ids=["lq", "qlr"])
@pytest.mark.parametrize("index", range(len(SINGLE)))
def test_single_estimators_match_closed_form(system, theta, index):
    make, reference = SINGLE[index]
    est = make(system.horizon)
    state = est.init(system, theta, jax.random.key(1))
    samples, _ = per_sample(est, system, theta, state, jax.random.key(2))
    assert bool(samples.keep.all())
    (component,) = samples.components.values()
    assert_within_se(component, reference(system, theta), type(est).__name__)


def test_reparameterization_without_antithetic_pairs_is_unbiased():
    est = vograd.Reparameterization(num_pairs=1024, sigma=SIGMA, antithetic=False, window=8)
    state = est.init(LQ, LQ_THETA, jax.random.key(1))
    samples, _ = per_sample(est, LQ, LQ_THETA, state, jax.random.key(2))
    assert_within_se(samples.components["rp"], smoothed_reference(LQ, LQ_THETA), "rp")


@pytest.mark.parametrize("system,theta", [(LQ, LQ_THETA), (QLR, QLR_THETA)], ids=["lq", "qlr"])
def test_merged_matches_smoothed_gradient_over_repeats(system, theta):
    # The merge weights are estimated from the same samples, so the merged
    # estimate is not a mean of per-sample values: repeat it over 64 keys and
    # use the spread of the repeats.
    est = vograd.Merged(num_pairs=16, sigma=SIGMA)
    keys = jax.random.split(jax.random.key(5), 64)
    runs = [estimate(est, system, theta, None, k) for k in keys]
    grads = np.stack([np.asarray(g) for g, _, _ in runs])
    diag = jax.tree.map(lambda *x: np.stack(x), *[d for _, _, d in runs])
    assert_within_se(grads, smoothed_reference(system, theta), "Merged")
    w = np.asarray(diag.weight["rp"]) + np.asarray(diag.weight["es"])
    np.testing.assert_allclose(w, 1.0, rtol=1e-5)  # weights of a convex combination
    # Both systems are smooth at this theta: rp has the lower variance and
    # dominates (measured mean rp weight over the repeats: 0.956 on LQ, 0.965 on QLR).
    assert float(np.mean(diag.weight["rp"])) > 0.9


def test_merged_weights_are_inverse_variances_per_element_and_total():
    est = M4
    state = est.init(LQ, LQ_THETA, jax.random.key(0))
    samples, _ = per_sample(est, LQ, LQ_THETA, state, jax.random.key(1))
    rp = np.asarray(samples.components["rp"], np.float64)
    es = np.asarray(samples.components["es"], np.float64)
    v_rp, v_es = rp.var(0, ddof=1) + 1e-8, es.var(0, ddof=1) + 1e-8
    for weighting in ("per_element", "total"):
        g, diag = jit_merged_estimate(samples, weighting)
        if weighting == "per_element":
            w_rp = (1 / v_rp) / (1 / v_rp + 1 / v_es)
        else:
            w_rp = (1 / v_rp.sum()) / (1 / v_rp.sum() + 1 / v_es.sum())
        expected = w_rp * rp.mean(0) + (1 - w_rp) * es.mean(0)
        np.testing.assert_allclose(g, expected, rtol=1e-4)
        np.testing.assert_allclose(diag.weight["rp"], np.mean(w_rp), rtol=1e-4)
        np.testing.assert_allclose(diag.variance["rp"], (v_rp - 1e-8).sum(), rtol=1e-4)
        np.testing.assert_allclose(diag.variance["es"], (v_es - 1e-8).sum(), rtol=1e-4)
    # Through the estimator, with the same key, the same samples.
    g_est, _, _ = estimate(est, LQ, LQ_THETA, state, jax.random.key(1), FULL)
    np.testing.assert_allclose(g_est, jit_merged_estimate(samples, "per_element")[0], rtol=1e-5)


def test_merged_rp_weight_vanishes_when_gradients_explode():
    # theta = 0.5, a = 4.2: |1 - theta a| = 1.1 > 1, so grad L grows like
    # 1.1^(2T) while the smoothed ES estimate stays comparatively tame.
    weights = []
    with jax.enable_x64(True):  # the exploding variances overflow float32
        for horizon in (10, 300):
            system = QuadraticLearningRate(horizon=horizon, a=[0.5, 1.0, 4.2], w0=[1.0] * 3)
            est = vograd.Merged(num_pairs=256, sigma=0.03)
            _, _, diag = estimate(est, system, jnp.asarray(0.5), None, jax.random.key(0))
            weights.append(float(diag.weight["rp"]))
            assert np.isfinite(float(diag.variance["rp"]))
    # Measured 0.707 and 0.0028 (variances rp 3.9e6 vs es 9.5e6 at T = 10,
    # 6.8e191 vs 1.9e189 at T = 300); a numpy Monte Carlo of the same
    # configuration (256 pairs) gives 0.71 and 0.0026.
    assert weights[0] > 0.4
    assert weights[1] < 0.01


class Relax(UnrolledSystem):
    """``s <- 0.5 s + theta`` from 0, loss ``(s - 1)^2``: the state forgets its past
    at rate 0.5 per step and settles at ``2 theta``."""

    horizon: int = eqx.field(static=True, default=100)

    def init_theta(self, key):
        return jnp.zeros(())

    def init(self, theta, key):
        return jnp.zeros(())

    def step(self, theta, s, key):
        s = 0.5 * s + theta
        return s, (s - 1.0) ** 2


# A small truncated ES configuration on QLR: shared by the continuation and
# the jit/vmap tests (one compile).
ES4 = vograd.EvolutionStrategies(num_pairs=4, sigma=SIGMA, window=5)


def test_pairs_continue_from_the_positive_branch():
    state = ES4.init(QLR, QLR_THETA, jax.random.key(0))
    samples, state = per_sample(ES4, QLR, QLR_THETA, state, jax.random.key(1))
    eps = np.asarray(samples.noise, np.float64)[:, None]
    a, w0 = np.asarray(QLR.a, np.float64), np.asarray(QLR.w0, np.float64)
    # After 5 steps under theta_b: w = (1 - theta_b a)^5 w0.
    plus = (1 - (float(QLR_THETA) + eps) * a) ** 5 * w0
    minus = (1 - (float(QLR_THETA) - eps) * a) ** 5 * w0
    np.testing.assert_allclose(state.particles.state, plus, rtol=1e-5)
    assert np.max(np.abs(np.asarray(state.particles.state) - minus)) > 1e-2
    np.testing.assert_array_equal(state.particles.t, 5)


def test_stagger_spreads_episode_ends():
    est = vograd.EvolutionStrategies(num_pairs=16, sigma=0.1, window=5, stagger=True)
    state = est.init(Relax(), jnp.zeros(()), jax.random.key(0))
    t = np.asarray(state.particles.t)
    # 16 draws from U{0..99}: at least 12 distinct values (P(fewer) < 1e-4).
    assert t.min() >= 0 and t.max() < 100 and len(np.unique(t)) >= 12


def test_dynamic_length_equals_static_window():
    short = vograd.Merged(num_pairs=4, sigma=1.0, window=5)
    state = M4.init(LQ, LQ_THETA, jax.random.key(0))
    g_long, s_long, d_long = estimate(M4, LQ, LQ_THETA, state, jax.random.key(1), jnp.asarray(5))
    g_short, s_short, d_short = estimate(short, LQ, LQ_THETA, state, jax.random.key(1))
    # Same keys, same noise, same 5 steps: bit-identical.
    np.testing.assert_array_equal(g_long, g_short)
    np.testing.assert_array_equal(s_long.particles.state, s_short.particles.state)
    np.testing.assert_array_equal(d_long.loss, d_short.loss)
    # Other lengths reuse the compiled window: no new trace.
    before = len(TRACES)
    for length in (3, 8):
        estimate(M4, LQ, LQ_THETA, state, jax.random.key(1), jnp.asarray(length))
    assert len(TRACES) == before


def relax_window(theta, start, steps):
    """Closed-form (loss, d loss / d theta) of a Relax window from a fixed start."""
    s, ds, loss, grad = start, 0.0, 0.0, 0.0
    for _ in range(steps):
        s, ds = 0.5 * s + theta, 0.5 * ds + 1.0
        loss, grad = loss + (s - 1) ** 2, grad + 2 * (s - 1) * ds
    return loss / steps, grad / steps


def test_burn_in_replays_the_window_end_under_the_current_theta():
    system, theta1, theta2, window, k = Relax(), 2.0, -1.0, 6, 3
    results = {}
    for burn_in, chunk in ((0, None), (k, None), (k, 3)):
        est = vograd.TruncatedBackprop(num_particles=2, window=window, burn_in=burn_in, chunk=chunk)
        state = est.init(system, jnp.asarray(theta1), jax.random.key(0))
        length = jnp.asarray(window)
        _, state, _ = estimate(est, system, jnp.asarray(theta1), state, jax.random.key(1), length)
        g, state, diag = estimate(est, system, jnp.asarray(theta2), state, jax.random.key(2), length)
        results[burn_in, chunk] = (float(g), float(diag.loss))
    # After 6 steps under theta1 = 2 the state is 4 (1 - 2^-6) = 3.9375. With
    # burn-in, the stored state 3 steps earlier (3.5) is re-run 3 steps under
    # theta2 = -1: 3.5 / 8 - 2 (7/8) = -1.3125. A trajectory run under theta2
    # all along would be at -2 (1 - 2^-6) = -1.96875.
    stale, replayed, ideal = 3.9375, -1.3125, -1.96875
    for key, start in (((0, None), stale), ((k, None), replayed), ((k, 3), replayed)):
        loss, grad = relax_window(theta2, start, window)
        np.testing.assert_allclose(results[key], (grad, loss), rtol=1e-5)
    # Burn-in moves the window's start, and with it the truncated gradient,
    # towards the hysteresis-free values.
    ideal_grad = relax_window(theta2, ideal, window)[1]
    assert abs(results[k, None][0] - ideal_grad) < 0.2 * abs(results[0, None][0] - ideal_grad)


def test_burn_in_anchor_is_the_positive_branch_and_lengths_vary():
    est = vograd.EvolutionStrategies(num_pairs=4, sigma=SIGMA, window=5, burn_in=2)
    theta = float(QLR_THETA)
    a, w0 = np.asarray(QLR.a, np.float64), np.asarray(QLR.w0, np.float64)
    state = est.init(QLR, QLR_THETA, jax.random.key(0))
    samples, state = per_sample(est, QLR, QLR_THETA, state, jax.random.key(1))
    eps = np.asarray(samples.noise, np.float64)[:, None]
    # The anchor is the + branch 2 steps before the window's end (3 steps in);
    # the particle is where the + branch ended.
    np.testing.assert_allclose(state.replay.start.state, (1 - (theta + eps) * a) ** 3 * w0,
                               rtol=1e-5)
    np.testing.assert_allclose(state.particles.state, (1 - (theta + eps) * a) ** 5 * w0,
                               rtol=1e-5)
    assert int(state.replay.length) == 2
    # Next window of 4 steps: replay 2 steps under theta from the anchor, then
    # 4 more; 5 + 4 = 9 > horizon 8: one episode end, then 1 step in.
    _, state, diag = estimate(est, QLR, QLR_THETA, state, jax.random.key(2), jnp.asarray(4))
    np.testing.assert_array_equal(state.particles.t, 1)
    assert np.isfinite(float(diag.loss))


def test_jit_vmap_and_seed_reproducibility():
    state = ES4.init(QLR, QLR_THETA, jax.random.key(0))
    key = jax.random.key(7)
    jitted = per_sample(ES4, QLR, QLR_THETA, state, key)
    eager = ES4.per_sample(QLR, QLR_THETA, state, key)  # no jit around it
    # Op-by-op vs fused: equal up to float32 reassociation.
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Fixed seed: running again reproduces every per-sample value bit for bit.
    again = per_sample(ES4, QLR, QLR_THETA, state, key)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(jitted)):
        np.testing.assert_array_equal(a, b)
    # vmap over keys equals one call per key.
    keys = jax.random.split(key, 3)
    batched = eqx.filter_jit(
        jax.vmap(lambda k: ES4.per_sample(QLR, QLR_THETA, state, k)[0].components["es"])
    )(keys)
    for i in range(3):
        single = per_sample(ES4, QLR, QLR_THETA, state, keys[i])[0].components["es"]
        np.testing.assert_allclose(batched[i], single, rtol=1e-5, atol=1e-7)


class Blowup(UnrolledSystem):
    """LQ whose loss is NaN when theta[0] > 1 and inf when theta[0] < -1."""

    horizon: int = eqx.field(static=True)
    inner: LinearQuadratic
    threshold: jax.Array = eqx.field(default=1.0, converter=jnp.asarray)  # a leaf: no recompiles

    def init_theta(self, key):
        return self.inner.init_theta(key)

    def init(self, theta, key):
        return self.inner.init(theta, key)

    def step(self, theta, s, key):
        s, loss = self.inner.step(theta, s, key)
        loss = jnp.where(theta[0] > self.threshold, jnp.nan, loss)
        return s, jnp.where(theta[0] < -self.threshold, jnp.inf, loss)


NON_FINITE = {
    "merged": M4,
    "pes": vograd.PersistentES(num_pairs=32, sigma=1.0, window=8),
}


@pytest.mark.parametrize("name", sorted(NON_FINITE))
def test_non_finite_samples_are_dropped_and_counted(name):
    est, theta = NON_FINITE[name], jnp.zeros(3)
    state = est.init(LQ, theta, jax.random.key(0))
    key = jax.random.key(0)  # with 4 pairs, one has |eps_0| > 1
    # The threshold is an array leaf: clean (1e9) and blowing up (1.0) share a compile.
    clean, _ = per_sample(est, Blowup(8, LQ, threshold=1e9), theta, state, key)
    samples, new_state = per_sample(est, Blowup(8, LQ), theta, state, key)
    # A pair with |eps_0| > 1 has one NaN and one inf branch (theta = 0).
    keep = np.abs(np.asarray(clean.noise)[:, 0]) <= 1.0
    assert 0 < (~keep).sum() < len(keep) and bool(clean.keep.all())
    np.testing.assert_array_equal(samples.keep, keep)
    reduce = {"merged": lambda s: jit_merged_estimate(s, "per_element"),
              "pes": lambda s: jit_mean_estimate(s, "pes")}[name]
    g, diag = reduce(samples)
    assert int(diag.num_dropped) == (~keep).sum() and not bool(diag.all_dropped)
    assert np.all(np.isfinite(np.asarray(g)))
    # The estimate equals the clean estimate restricted to the kept samples.
    expected, _ = reduce(Samples(clean.components, clean.loss, jnp.asarray(keep)))
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)
    # Dropped pairs restart fresh episodes (t = 0); kept ones ran 8 steps.
    t = np.asarray(new_state.particles.t)
    t = t[:, 0] if t.ndim == 2 else t
    np.testing.assert_array_equal(t, np.where(keep, 8, 0))
    if name == "pes":
        assert np.all(np.asarray(new_state.xi)[~keep] == 0)
    # Everything non-finite: zero gradient, all_dropped (no new compile).
    samples, _ = per_sample(est, Blowup(8, LQ, threshold=-1e9), theta, state, key)
    g, diag = reduce(samples)
    assert bool(diag.all_dropped) and int(diag.num_dropped) == len(keep)
    np.testing.assert_array_equal(g, np.zeros(3))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: vograd.Reparameterization(sigma=0.0), "sigma"),
        (lambda: vograd.EvolutionStrategies(sigma=-1.0), "sigma"),
        (lambda: vograd.EvolutionStrategies(num_pairs=0), "num_pairs"),
        (lambda: vograd.Merged(num_pairs=1), "sample variances"),
        (lambda: vograd.Merged(weighting="median"), "weighting"),
        (lambda: vograd.TruncatedBackprop(num_particles=0), "num_particles"),
        (lambda: vograd.TruncatedBackprop(window=0), "window"),
        (lambda: vograd.PersistentES(window=None), "window"),
        (lambda: vograd.Merged(window=10, chunk=3), "chunk"),
        (lambda: vograd.Merged(burn_in=2), "burn_in"),
        (lambda: vograd.FullES(sigma=0.0), "sigma"),
    ],
)
def test_bad_configuration_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_window_longer_than_horizon_and_bad_length_raise():
    with pytest.raises(ValueError, match="horizon"):
        vograd.EvolutionStrategies(window=9).init(LQ, LQ_THETA, jax.random.key(0))
    est = M4  # compiled above
    state = est.init(LQ, LQ_THETA, jax.random.key(0))
    with pytest.raises(ValueError, match="length"):
        est.estimate(LQ, LQ_THETA, state, jax.random.key(0), length=9)
    # Traced lengths are checked at run time (eqx.error_if).
    with pytest.raises(Exception, match="length must be in"):
        g, _, _ = estimate(est, LQ, LQ_THETA, state, jax.random.key(0), jnp.asarray(0))
        jax.block_until_ready(g)
    # A WindowLength is checked where it is made, and then gives the same estimate as a traced int.
    from vograd.estimators.config import WindowLength, window_length

    for bad in (0, 9, True):
        with pytest.raises(ValueError, match="length"):
            window_length(bad, 8)
    checked = window_length(5, 8)
    assert isinstance(checked, WindowLength) and int(checked.value) == 5
    g_checked, _, _ = est.estimate(LQ, LQ_THETA, state, jax.random.key(1), length=checked)
    g_traced, _, _ = estimate(est, LQ, LQ_THETA, state, jax.random.key(1), jnp.asarray(5))
    np.testing.assert_allclose(np.asarray(g_checked), np.asarray(g_traced), rtol=1e-6)
