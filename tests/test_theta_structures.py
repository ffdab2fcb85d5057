"""Estimators keep theta's pytree structure, whatever containers theta uses.

Regression: splitting per-leaf (a, b) results with ``is_leaf=isinstance(x, tuple)``
mistook theta's own tuples for those pairs and returned a gradient of another
structure (found with the hierarchical optimizer, whose theta holds a tuple of layers).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import vograd
from vograd.estimators import (
    EvolutionStrategies, FullES, Merged, PersistentES, Reparameterization, TruncatedBackprop,
)


class TupleTheta(vograd.UnrolledSystem):
    """s <- s + a + b s; theta = (a, (b, c)) with c unused: tuples of length 2 at two depths."""

    horizon: int = eqx.field(static=True, default=6)

    def init_theta(self, key):
        return (jnp.array([0.1, 0.2]), (jnp.array(0.3), {"c": jnp.zeros((2,))}))

    def init(self, theta, key):
        return jnp.ones((2,))

    def step(self, theta, state, key):
        a, (b, _) = theta
        state = state + 0.1 * a + 0.1 * b * state
        return state, jnp.sum(state**2)


@pytest.mark.parametrize(
    "estimator",
    [
        Merged(num_pairs=3, sigma=0.1, window=3),
        Merged(num_pairs=3, sigma=0.1, window=3, weighting="total"),
        Reparameterization(num_pairs=2, sigma=0.1, window=3),
        EvolutionStrategies(num_pairs=2, sigma=0.1, window=3),
        PersistentES(num_pairs=2, sigma=0.1, window=3),
        TruncatedBackprop(num_particles=2, window=3),
        FullES(num_pairs=2, sigma=0.1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_gradient_has_theta_structure(estimator):
    system = TupleTheta()
    theta = system.init_theta(jax.random.key(0))
    state = estimator.init(system, theta, jax.random.key(1))
    grad, _, diag = estimator.estimate(system, theta, state, jax.random.key(2))
    assert jax.tree.structure(grad) == jax.tree.structure(theta)
    assert all(g.shape == t.shape for g, t in zip(jax.tree.leaves(grad), jax.tree.leaves(theta)))
    assert int(diag.num_dropped) == 0


def test_train_rejects_a_theta_of_another_structure():
    import optax

    system = TupleTheta()
    est = TruncatedBackprop(num_particles=2, window=3)
    with pytest.raises(ValueError, match=r"got \(3,\) float32, expected \(2,\) float32"):
        vograd.train(system, est, optax.sgd(0.1), 1, jax.random.key(0), progress=False,
                     theta=(jnp.zeros(3), (jnp.array(0.3), {"c": jnp.zeros((2,))})))
    with pytest.raises(ValueError, match="got structure"):
        vograd.train(system, est, optax.sgd(0.1), 1, jax.random.key(0), progress=False,
                     theta=jnp.zeros(2))
