"""Tests of the inner-problem task families (tasks/problems/)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tasks.problems import QuadraticFamily


def test_quadratic_gradient_descent_reaches_closed_form_optimum():
    family = QuadraticFamily(dim=10)
    task = family.sample(jax.random.key(0))
    w_star = family.optimum(task)
    batch = family.batch(task, jax.random.key(1), "train")
    # A is square Gaussian and almost surely invertible: the optimum has zero loss
    # (float32 lstsq on a condition number ~1e2 leaves ~1e-8 relative residual).
    assert float(family.loss(w_star, task, batch)) < 1e-6
    grad = jax.grad(family.loss)(w_star, task, batch)
    assert float(jnp.max(jnp.abs(grad))) < 1e-3


def test_quadratic_vmapped_population():
    family = QuadraticFamily(dim=10, noise_std=0.1)
    keys = jax.random.split(jax.random.key(0), 4)
    tasks = jax.vmap(family.sample)(keys)
    params = jax.vmap(family.init_params)(tasks, keys)
    batches = jax.vmap(lambda t, k: family.batch(t, k, "train"))(tasks, keys)
    losses = jax.jit(jax.vmap(family.loss))(params, tasks, batches)
    assert losses.shape == (4,)
    assert np.all(np.isfinite(np.asarray(losses)))
    # Tasks differ: distinct A matrices.
    assert float(jnp.abs(tasks.A[0] - tasks.A[1]).max()) > 0.1
    # E||A w - y||^2 = d*(d*s^2 + 1 + noise^2) = 10*(10+1+0.01) ~ 110 for w~N(0,I);
    # four draws of a chi-square-like sum with ~10 dof lie well within [10, 1000].
    assert 10 < float(losses.mean()) < 1000


def test_quadratic_rejects_bad_split():
    family = QuadraticFamily()
    task = family.sample(jax.random.key(0))
    with pytest.raises(ValueError, match="split"):
        family.batch(task, jax.random.key(0), "validation")
