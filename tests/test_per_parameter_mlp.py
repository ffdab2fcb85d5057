"""The per-parameter MLP primitive: its blocked backward is reverse mode of its forward."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vograd.tasks.optimizers import AdaptiveMLPOptimizer, MLPOptimizer, adaptive_mlp
from vograd.tasks.optimizers import mlp as mlp_module
from vograd.tasks.optimizers.per_parameter_mlp import BLOCK, _elementwise, mlp_outputs


def _weights(f, h, key=0):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(key), 4)
    return (jax.random.normal(k1, (f, h)), 0.3 * jax.random.normal(k2, (h,)),
            jax.random.normal(k3, (h, 2)) / h, 0.1 * jax.random.normal(k4, (2,)))


def _loss(mlp, weights, rows):
    d, s = mlp(*weights, rows)
    # A head like the optimizers' (a product and an exponential), so both cotangents vary.
    return jnp.sum(jnp.sin(d) * jnp.exp(0.3 * s))


@pytest.mark.parametrize("shape", [(1,), (7, 3), (BLOCK,), (BLOCK + 1,), (3, BLOCK + 5)])
def test_blocked_backward_matches_reverse_mode_of_the_forward(shape):
    f, h = 5, 8
    weights = _weights(f, h)
    keys = jax.random.split(jax.random.key(1), f)
    rows = tuple(jax.random.normal(k, shape) for k in keys)
    # Same forward, bit for bit.
    for a, b in zip(mlp_outputs(*weights, rows), _elementwise(*weights, rows)):
        np.testing.assert_array_equal(a, b)
    got = jax.grad(lambda w, r: _loss(mlp_outputs, w, r), argnums=(0, 1))(weights, rows)
    want = jax.grad(lambda w, r: _loss(_elementwise, w, r), argnums=(0, 1))(weights, rows)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.shape == b.shape
        # Summation order differs (blocks, dense products): float32 rounding only.
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))
    # Every row's gradient is non-trivial, and padded columns leak nothing into it.
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in got[1])


def test_blocked_backward_under_vmap_matches_per_member_gradients():
    f, h = 3, 4
    weights = _weights(f, h, key=2)
    rows = tuple(jax.random.normal(jax.random.key(i), (4, 2 * BLOCK + 3)) for i in range(f))
    grad = jax.grad(lambda w, r: _loss(mlp_outputs, w, r))
    batched = jax.vmap(grad, in_axes=(None, 0))(weights, rows)
    for i in range(4):
        one = grad(weights, tuple(r[i] for r in rows))
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one)):
            np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)


def _inner_loss(p):
    return jnp.sum(jnp.tanh(p["w"]) ** 2) + jnp.sum((p["b"] - 1.0) ** 2)


def _total_loss(lopt, theta, steps=3):
    """Returns the sum of the inner losses over ``steps`` learned updates of a fixed problem."""
    params = {"w": jax.random.normal(jax.random.key(4), (40, 30)), "b": jnp.zeros((30,))}
    state = lopt.init(theta, params)
    total = 0.0
    for _ in range(steps):
        loss, grads = jax.value_and_grad(_inner_loss)(params)
        updates, state = lopt.update(theta, grads, state, params)
        params = optax.apply_updates(params, updates)
        total = total + loss
    return total


def test_fused_metz_optimizer_over_several_blocks_has_the_dense_forms_outer_gradient():
    # tests/test_optimizers.py checks one 5-parameter tensor (one block); here 1,200
    # parameters span five blocks, the last one padded, over three updates.
    dense = MLPOptimizer()
    fused = MLPOptimizer(fused_forward=True)
    theta = dense.init_theta(jax.random.key(0))
    got = jax.grad(lambda t: _total_loss(fused, t))(theta)
    want = jax.grad(lambda t: _total_loss(dense, t))(theta)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert float(jnp.max(jnp.abs(b))) > 0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def test_adaptive_optimizer_outer_gradient_is_reverse_mode_of_its_forward(monkeypatch):
    lopt = AdaptiveMLPOptimizer(hidden=4, lr=1e-2)
    theta = lopt.init_theta(jax.random.key(0))
    theta = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.key(9), x.shape), theta)
    got = jax.grad(lambda t: _total_loss(lopt, t))(theta)
    # The reference: plain reverse mode through the elementwise form.
    monkeypatch.setattr(adaptive_mlp, "mlp_outputs", _elementwise)
    want = jax.grad(lambda t: _total_loss(lopt, t))(theta)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert float(jnp.max(jnp.abs(b))) > 0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def test_backward_benchmark_variants_differentiate_the_same_function():
    from vograd.benchmarks.optimizer import backward

    weights = _weights(3, 4, key=3)
    rows = tuple(jax.random.normal(jax.random.key(i), (2, BLOCK + 9)) for i in range(3))
    grads = {name: jax.grad(lambda w, r: _loss(fn, w, r), argnums=(0, 1))(weights, rows)
             for name, fn in backward.VARIANTS.items()}
    for name, got in grads.items():
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(grads["elementwise"])):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))),
                                       err_msg=name)
    # The swap is undone after tracing.
    with backward._using(mlp_module, "dense"):
        assert mlp_module.mlp_outputs is backward.VARIANTS["dense"]
    assert mlp_module.mlp_outputs is mlp_outputs
