"""Tests of `vograd.JointSystem`: its gradient is the weighted mean of its members'
closed-form gradients, estimators stay unbiased on it, and bad members are refused."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vograd
from vograd.tasks.toys import LinearQuadratic, QuadraticLearningRate

SIGMA = 0.1
K_SE = 4.0
A = LinearQuadratic.random(jax.random.key(0), horizon=8, noise=0.2)
B = LinearQuadratic.random(jax.random.key(7), horizon=8, noise=0.2, dim=3)
THETA = jnp.array([0.3, -0.5, 0.2])
JOINT = vograd.JointSystem([A, B], weights=[1.0, 3.0])


def test_weights_are_normalised_and_the_step_loss_is_their_mean():
    assert JOINT.weights == (0.25, 0.75) and JOINT.horizon == 8
    key = jax.random.key(3)
    state = JOINT.init(THETA, key)
    (sa, sb), loss = JOINT.step(THETA, state, key)
    sa_ref, la = A.step(THETA, A.init(THETA, jax.random.fold_in(key, 0)), jax.random.fold_in(key, 0))
    sb_ref, lb = B.step(THETA, B.init(THETA, jax.random.fold_in(key, 1)), jax.random.fold_in(key, 1))
    np.testing.assert_allclose(loss, 0.25 * la + 0.75 * lb, rtol=1e-6)
    for got, want in ((sa, sa_ref), (sb, sb_ref)):
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(g, w)


def test_full_episode_gradient_is_the_weighted_mean_of_the_closed_forms():
    # Deterministic members: autodiff of the joint episode against numpy float64.
    qa = QuadraticLearningRate(horizon=10, a=[0.5, 1.0, 1.5], w0=[1.0, -2.0, 0.5])
    qb = QuadraticLearningRate(horizon=10, a=[0.2, 2.0], w0=[3.0, 1.0])
    joint = vograd.JointSystem([qa, qb], weights=[2.0, 1.0])

    def loss(theta):
        key = jax.random.key(0)
        p = vograd.init_particle(joint, theta, key)
        return vograd.unroll(joint, theta, p, key, joint.horizon)[1].mean_loss()

    for theta in (0.2, 0.7):
        value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(theta))
        np.testing.assert_allclose(value, (2 * qa.true_loss(theta) + qb.true_loss(theta)) / 3,
                                   rtol=1e-5)
        np.testing.assert_allclose(grad, (2 * qa.true_grad(theta) + qb.true_grad(theta)) / 3,
                                   rtol=1e-4)


@pytest.mark.parametrize("component", ["rp", "es"])
def test_merged_components_are_unbiased_for_the_weighted_smoothed_gradient(component):
    est = vograd.Merged(num_pairs=1024, sigma=SIGMA, window=8)
    state = est.init(JOINT, THETA, jax.random.key(1))
    samples, _ = eqx.filter_jit(est.per_sample)(JOINT, THETA, state, jax.random.key(2))
    assert bool(samples.keep.all())
    reference = 0.25 * A.smoothed_grad(THETA, SIGMA) + 0.75 * B.smoothed_grad(THETA, SIGMA)
    x = np.asarray(samples.components[component], np.float64)
    se = x.std(0, ddof=1) / np.sqrt(len(x))
    err = np.abs(x.mean(0) - np.asarray(reference))
    assert np.all(err < K_SE * se + 1e-5), (component, x.mean(0), reference, se)


def test_a_non_finite_member_drops_the_whole_sample():
    class Exploding(QuadraticLearningRate):
        def step(self, theta, w, key):
            w, loss = super().step(theta, w, key)
            return w, jnp.where(theta > 0.5, jnp.nan, loss)

    q = QuadraticLearningRate(horizon=4, a=[1.0], w0=[1.0])
    joint = vograd.JointSystem([q, Exploding(horizon=4, a=[1.0], w0=[1.0])])
    est = vograd.EvolutionStrategies(num_pairs=64, sigma=0.2, window=4)
    theta = jnp.asarray(0.45)
    state = est.init(joint, theta, jax.random.key(1))
    grad, _, diag = eqx.filter_jit(est.estimate)(joint, theta, state, jax.random.key(0))
    assert 0 < int(diag.num_dropped) < int(diag.num_samples)
    assert np.isfinite(float(grad))


def test_members_must_agree_on_horizon_and_theta():
    with pytest.raises(ValueError, match="horizon"):
        vograd.JointSystem([A, LinearQuadratic.random(jax.random.key(1), horizon=9)])
    with pytest.raises(ValueError, match="structure or shape"):
        vograd.JointSystem([A, LinearQuadratic.random(jax.random.key(1), horizon=8, num_params=2)])
    with pytest.raises(ValueError, match="positive weight"):
        vograd.JointSystem([A, B], weights=[1.0])
    with pytest.raises(ValueError, match="positive weight"):
        vograd.JointSystem([A, B], weights=[1.0, 0.0])
    with pytest.raises(TypeError, match="UnrolledSystem"):
        vograd.JointSystem([])
