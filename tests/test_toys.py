"""Tests of the toy systems (vograd/tasks/toys/) against their closed forms."""

import jax
import jax.numpy as jnp
import numpy as np

from vograd.tasks.toys import (
    InfluenceBalancing,
    LinearQuadratic,
    Lorenz,
    Momentum1D,
    QuadraticLearningRate,
    final_loss,
    grad_norms,
    true_theta,
)
from vograd.tasks.toys.momentum_1d import GLOBAL_MINIMUM, final_w, inner_grad
from vograd import Particle, init_particle, unroll


def episode_value_and_grad(system, theta, key=jax.random.key(0), num_steps=None):
    """Returns the autodiff value and gradient of the full-episode loss."""

    def loss(th):
        p = init_particle(system, th, key)
        return unroll(system, th, p, key, num_steps or system.horizon)[1].mean_loss()

    return jax.jit(jax.value_and_grad(loss))(theta)


def test_quadratic_lr_closed_form_matches_autodiff():
    system = QuadraticLearningRate(horizon=15, a=[0.5, 1.0, 1.5], w0=[1.0, -2.0, 0.5])
    for theta in (0.2, 0.9):
        v, g = episode_value_and_grad(system, jnp.asarray(theta))
        # float32 autodiff vs float64 polynomial: relative agreement to ~1e-5.
        np.testing.assert_allclose(v, system.true_loss(theta), rtol=1e-5)
        np.testing.assert_allclose(g, system.true_grad(theta), rtol=1e-4)


def test_quadratic_lr_smoothed_gradient_is_exact_quadrature():
    system = QuadraticLearningRate(horizon=6, a=[0.5, 1.0, 1.5], w0=[1.0, 1.0, 1.0])
    theta, sigma = 0.4, 0.2
    exact = system.smoothed_grad(theta, sigma)
    # T + 1 nodes integrate the degree-(2T-1) derivative exactly: more nodes
    # change nothing but rounding.
    x, w = np.polynomial.hermite_e.hermegauss(40)
    more = np.sum(w * [system.true_grad(theta + sigma * xi) for xi in x]) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(exact, more, rtol=1e-10)
    # Monte Carlo check of E[L'(theta + sigma n)] with 200k draws: within 4 SE.
    n = np.random.default_rng(0).standard_normal(200_000)
    a, c = np.array([0.5, 1.0, 1.5]), 0.5 * np.array([0.5, 1.0, 1.5])
    t = np.arange(1, 7)[:, None, None]
    r = 1 - (theta + sigma * n)[None, None, :] * a[None, :, None]
    samples = -np.sum(2 * t * a[None, :, None] * c[None, :, None] * r ** (2 * t - 1), (0, 1)) / 6
    se = samples.std() / np.sqrt(n.size)
    assert abs(samples.mean() - exact) < 4 * se
    # Smoothing matters here: the smoothed and plain gradients differ by > 10%.
    assert abs(exact - system.true_grad(theta)) > 0.1 * abs(system.true_grad(theta))


def test_quadratic_lr_gradient_explodes_when_unstable():
    system = QuadraticLearningRate(horizon=1, a=[0.5, 1.0, 4.2], w0=[1.0, 1.0, 1.0])
    # theta = 0.5: |1 - 0.5 * 4.2| = 1.1 > 1, |dL/dtheta| ~ T 1.1^(2T) / T.
    unstable = grad_norms(system, 0.5, [10, 50, 100])
    assert unstable[1] > 1e3 * unstable[0] and unstable[2] > 1e3 * unstable[1]
    # theta = 0.3: every |1 - 0.3 a_i| < 1, the gradient shrinks with T.
    stable = grad_norms(system, 0.3, [10, 50, 100])
    assert stable[2] < stable[1] < stable[0]


def test_linear_quadratic_window_grad_matches_autodiff():
    system = LinearQuadratic.random(jax.random.key(0), horizon=12)
    theta = jnp.array([0.5, -1.0, 0.25])
    v, g = episode_value_and_grad(system, theta)
    np.testing.assert_allclose(v, system.window_loss(theta), rtol=1e-5)
    np.testing.assert_allclose(g, system.window_grad(theta), rtol=1e-4, atol=1e-5)
    # From another start state and a shorter window.
    start = np.array([1.0, -1.0, 0.5, 2.0])

    def loss(th):
        p = Particle(jnp.asarray(start, jnp.float32), jnp.asarray(0, jnp.int32))
        return unroll(system, th, p, jax.random.key(0), 5)[1].mean_loss()

    np.testing.assert_allclose(
        jax.grad(loss)(theta), system.window_grad(theta, start, 5), rtol=1e-4, atol=1e-5
    )


def test_linear_quadratic_noise_leaves_expected_gradient_unchanged():
    system = LinearQuadratic.random(jax.random.key(0), horizon=6, noise=0.5)
    theta = jnp.array([0.5, -1.0, 0.25])
    keys = jax.random.split(jax.random.key(1), 4000)
    vals, grads = jax.vmap(lambda k: episode_value_and_grad(system, theta, k))(keys)
    grads = np.asarray(grads, np.float64)
    se = grads.std(0) / np.sqrt(len(keys))
    # Each element within 4 standard errors of the noiseless closed form.
    assert np.all(np.abs(grads.mean(0) - system.window_grad(theta)) < 4 * se)
    se_v = np.std(vals) / np.sqrt(len(keys))
    assert abs(np.mean(vals) - system.window_loss(theta)) < 4 * se_v


def test_momentum_settles_in_the_two_basins():
    system = Momentum1D(horizon=1000)
    w = jax.vmap(lambda t: final_w(system, t))(jnp.array([0.3, 0.6, 0.85]))
    # Low momentum: the local minimum w = 0; ~0.85: the global one ~3.569.
    np.testing.assert_allclose(w[:2], 0.0, atol=1e-3)
    np.testing.assert_allclose(w[2], GLOBAL_MINIMUM, atol=1e-3)
    assert abs(float(inner_grad(jnp.asarray(GLOBAL_MINIMUM)))) < 1e-4


def test_momentum_final_loss_turns_near_discontinuous():
    theta = jnp.linspace(0.7, 0.86, 1001)  # spacing 1.6e-4 across the basin transition

    def jumps(horizon):
        system = Momentum1D(horizon=horizon)
        f, g = jax.jit(jax.vmap(jax.value_and_grad(lambda t: final_loss(system, t))))(theta)
        return np.abs(np.diff(np.asarray(f))), np.abs(np.asarray(g))

    short, short_grad = jumps(20)
    long, long_grad = jumps(1000)
    # T = 20: smooth; the largest step between neighbours (~0.57) is what the
    # gradient predicts (|g| * 1.6e-4). T = 1000: a jump of the full basin gap
    # l(0) - l(3.569) = 3.12 between neighbours, where the gradient is ~0.
    assert short.max() < 1.0
    i = int(long.argmax())
    assert long[i] > 3.0
    assert max(long_grad[i], long_grad[i + 1]) * 1.6e-4 < 1e-3


def test_influence_balancing_closed_form_and_truncation_bias():
    system = InfluenceBalancing(horizon=100)
    v, g = episode_value_and_grad(system, jnp.asarray(0.5))
    np.testing.assert_allclose(v, system.true_loss(0.5), rtol=1e-4)
    np.testing.assert_allclose(g, system.true_grad(0.5), rtol=1e-3)
    # Full-episode gradient is positive (~35.7); 10-step truncations see only
    # the short-term positive influence of theta on s[0] and get the sign wrong.
    assert system.true_grad(0.5) > 30
    assert system.truncated_grad(0.5, 10) < -1.0
    full = InfluenceBalancing()
    assert full.horizon == 500 and full.dim == 23 and float(full.init_theta(None)) == 0.5


def test_lorenz_fits_at_true_parameters_and_is_chaotic():
    system = Lorenz()
    at_truth, _ = episode_value_and_grad(system, jnp.asarray(true_theta()))
    at_start, _ = episode_value_and_grad(system, system.init_theta(None))
    # exp(log 10) is 10 only to float32 rounding, and chaos amplifies that over
    # 2000 steps; still ~7 orders below the loss at theta0 (~340).
    assert float(at_truth) < 1e-3 and float(at_start) > 100

    def final_z(theta, steps):
        p = init_particle(system, theta, jax.random.key(0))
        state = unroll(system, theta, p, jax.random.key(0), steps)[0].state
        return state[0][2]

    theta = jnp.asarray(true_theta())
    nudge = theta + jnp.array([1e-4, 0.0])
    short = abs(float(final_z(nudge, 100) - final_z(theta, 100)))
    long = abs(float(final_z(nudge, 2000) - final_z(theta, 2000)))
    # Sensitivity to a 1e-4 change in log a: ~3e-4 after 100 steps, ~0.7 after
    # 2000 (measured); chaos makes it grow by orders of magnitude.
    assert short < 1e-2 and long > 0.1 and long > 100 * short
