"""AdaptiveMLPOptimizer: Adam at initialisation, scale-free, bounded, still without gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vograd.tasks.optimizers import AdaptiveMLPOptimizer


def _params():
    k1, k2 = jax.random.split(jax.random.key(3))
    return {"w": jax.random.normal(k1, (6, 5)), "b": jnp.zeros((5,)), "v": jax.random.normal(k2, (7,))}


def _loss(p):
    return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum((p["b"] - 1.0) ** 2) + jnp.sum(p["v"] ** 4)


def _random_theta(lopt, scale=1.0):
    theta = lopt.init_theta(jax.random.key(0))
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return jax.tree.unflatten(treedef, [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def _trajectory(opt, params, steps, grad_scale=1.0):
    state = opt.init(params)
    for _ in range(steps):
        grads = jax.tree.map(lambda g: grad_scale * g, jax.grad(_loss)(params))
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_initial_theta_is_adam():
    # w2 = b2 = 0 and log_lr = 0: exactly Adam(1e-3, b1=0.9, b2=0.999, eps=1e-12); float32
    # rounding of two orderings of the same arithmetic stays below 1e-6 over 50 steps.
    lopt = AdaptiveMLPOptimizer()
    ours = _trajectory(lopt.as_optax(lopt.init_theta(jax.random.key(0))), _params(), 50)
    ref = _trajectory(optax.adam(1e-3, eps=1e-12), _params(), 50)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_zero_gradient_history_never_moves():
    lopt = AdaptiveMLPOptimizer()
    theta = _random_theta(lopt)  # a non-zero residual: its bias alone would move parameters
    params = _params()
    state = lopt.init(theta, params)
    zero = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        updates, state = lopt.update(theta, zero, state, params)
        assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
    # A tensor whose gradient is zero in some entries: only those stay.
    grads = {**zero, "v": jnp.array([0.0, 1.0, 0.0, -2.0, 0.0, 0.0, 3.0])}
    updates, _ = lopt.update(theta, grads, lopt.init(theta, params), params)
    assert np.all((np.asarray(updates["v"]) != 0) == (np.asarray(grads["v"]) != 0))


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_invariant_to_loss_scale(scale):
    # Every input but w / rms(w) is g-scale free while sqrt(v) >> eps = 1e-12; the
    # trajectories differ only by float32 rounding of the normalisation.
    lopt = AdaptiveMLPOptimizer()
    opt = lopt.as_optax(_random_theta(lopt, 0.5))
    base, scaled = _trajectory(opt, _params(), 30), _trajectory(opt, _params(), 30, scale)
    for a, b in zip(jax.tree.leaves(base), jax.tree.leaves(scaled)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_step_is_bounded():
    # Huge weights saturate both tanh outputs; |u| <= lr * u_max whatever theta is.
    lopt = AdaptiveMLPOptimizer()
    theta = _random_theta(lopt, 100.0)
    theta = type(theta)(theta.w1, theta.b1, theta.w2, theta.b2, jnp.zeros(()))
    params = _params()
    updates, _ = lopt.update(theta, jax.grad(_loss)(params), lopt.init(theta, params), params)
    peak = max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(updates))
    assert 0 < peak <= lopt.lr * lopt.u_max * (1 + 1e-6)


def test_outer_gradient_is_finite_through_zero_biases():
    # Zero-initialised biases have rms 0 and zero-gradient entries have v = 0: sqrt at 0 has
    # an infinite derivative, which once made every reverse-mode outer gradient NaN.
    lopt = AdaptiveMLPOptimizer()

    def unrolled(theta):
        params = {**_params(), "dead": jnp.zeros((4,))}
        state = lopt.init(theta, params)
        total = 0.0
        for _ in range(5):
            loss, grads = jax.value_and_grad(lambda p: _loss(p) + 0.0 * jnp.sum(p["dead"]))(params)
            updates, state = lopt.update(theta, grads, state, params)
            params = optax.apply_updates(params, updates)
            total = total + loss
        return total

    grads = jax.grad(unrolled)(_random_theta(lopt, 0.3))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads.log_lr)) > 0


@pytest.mark.parametrize("field,value", [("hidden", 0), ("b2", 1.0), ("lr", -1.0), ("eps", float("nan"))])
def test_invalid_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AdaptiveMLPOptimizer(**{field: value})
