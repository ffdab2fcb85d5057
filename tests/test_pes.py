"""Tests of PersistentES: unbiased across truncations where truncated backprop
is not, and the exact accumulated-perturbation bookkeeping across resets."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import vograd
from vograd.tasks.toys import InfluenceBalancing, QuadraticLearningRate


@eqx.filter_jit
def per_sample(est, system, theta, state, key):
    return est.per_sample(system, theta, state, key)


def test_pes_is_unbiased_across_truncations_where_tbptt_is_biased():
    # A 100-step episode cut into 10 windows of 10 steps (the PES paper uses
    # 500 steps; 100 keeps the test fast and the truncation bias as large).
    system, theta, window = InfluenceBalancing(horizon=100), jnp.asarray(0.5), 10
    windows = system.horizon // window
    pes = vograd.PersistentES(num_pairs=1000, sigma=0.1, window=window)
    state = pes.init(system, theta, jax.random.key(0))
    per_pair = 0.0
    for k in range(windows):
        samples, state = per_sample(pes, system, theta, state, jax.random.key(k + 1))
        per_pair = per_pair + np.asarray(samples.components["pes"], np.float64)
    # Equal-length windows: the episode loss is the mean of the window losses,
    # so the mean over windows of the estimates targets the full-episode gradient.
    per_pair = per_pair / windows
    mean, se = per_pair.mean(), per_pair.std(ddof=1) / np.sqrt(per_pair.size)
    true = system.true_grad(0.5)  # ~35.7; quadratic, so also the smoothed gradient
    assert abs(mean - true) < 4 * se, (mean, se, true)  # measured 39.4 +- 2.2

    tbptt = vograd.TruncatedBackprop(num_particles=1, window=window)
    state = tbptt.init(system, theta, jax.random.key(0))
    f = eqx.filter_jit(tbptt.estimate)
    total = 0.0
    for k in range(windows):
        g, state, _ = f(system, theta, state, jax.random.key(k + 1))
        total += float(g)
    # Deterministic system: truncated backprop is exactly its closed form
    # (each window's start state held fixed), ~ -1.78: the wrong sign.
    np.testing.assert_allclose(total / windows, system.truncated_grad(0.5, window), rtol=1e-4)
    assert total / windows < -1.0 < 30.0 < true
    # PES is far from that biased value: more than 10 standard errors away.
    assert abs(mean - total / windows) > 10 * se


def test_pes_accumulates_and_resets_perturbations_exactly():
    # Horizon 8, windows of 5: the second window crosses the episode end after
    # 3 steps, so those 3 steps carry xi_1 + eps_2 and the last 2 only eps_2.
    system = QuadraticLearningRate(horizon=8, a=[0.5, 1.0, 1.5], w0=[1.0, -1.0, 2.0])
    theta, sigma = 0.4, 0.1
    a, w0 = np.asarray(system.a, np.float64), np.asarray(system.w0, np.float64)
    est = vograd.PersistentES(num_pairs=3, sigma=sigma, window=5)
    state = est.init(system, jnp.asarray(theta), jax.random.key(0))
    s1, state = per_sample(est, system, jnp.asarray(theta), state, jax.random.key(1))
    eps1 = np.asarray(s1.noise, np.float64)
    np.testing.assert_allclose(state.xi, eps1, rtol=1e-6)
    s2, state = per_sample(est, system, jnp.asarray(theta), state, jax.random.key(2))
    eps2 = np.asarray(s2.noise, np.float64)
    np.testing.assert_allclose(state.xi, eps2, rtol=1e-6)  # restarted inside the window
    np.testing.assert_array_equal(state.particles.t, 2)

    def losses(th1, th2):
        # Steps 6..8 of the old episode (5 steps under th1, then th2), then 2 fresh ones.
        w, out = (1 - th1 * a) ** 5 * w0, []
        for _ in range(3):
            w = w - th2 * a * w
            out.append(0.5 * np.sum(a * w**2))
        w = w0
        for _ in range(2):
            w = w - th2 * a * w
            out.append(0.5 * np.sum(a * w**2))
        return np.array(out)

    for i in range(3):
        diff = losses(theta + eps1[i], theta + eps2[i]) - losses(theta - eps1[i], theta - eps2[i])
        expected = (diff[:3].sum() * (eps1[i] + eps2[i]) + diff[3:].sum() * eps2[i]) / (
            5 * 2 * sigma**2
        )
        np.testing.assert_allclose(s2.components["pes"][i], expected, rtol=1e-4)
    s3, state = per_sample(est, system, jnp.asarray(theta), state, jax.random.key(3))
    np.testing.assert_allclose(state.xi, eps2 + np.asarray(s3.noise), rtol=1e-6)
    # The two branches keep separate states: + ran theta + eps, - ran theta - eps.
    plus, minus = np.asarray(state.particles.state[:, 0]), np.asarray(state.particles.state[:, 1])
    assert np.all(np.abs(plus - minus).max(axis=1) > 1e-4)
