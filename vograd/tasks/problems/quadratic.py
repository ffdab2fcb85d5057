"""Random least-squares quadratics: the cheap task family for fast tests.

Each task is ``f(w) = ||A w - y||^2`` with ``A`` a ``d x d`` and ``y`` a
``d``-vector of standard-normal entries (the 10-d quadratics of Andrychowicz
et al. 2016). A minibatch perturbs the target, ``y + noise_std * eps`` with
``eps ~ N(0, I)``, so ``noise_std > 0`` gives stochastic gradients whose mean
is the exact gradient plus a constant offset in the loss only.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vograd.tasks.problems.base import Split, TaskFamily


class QuadraticTask(eqx.Module):
    """One quadratic: ``A`` of shape ``[d, d]`` and target ``y`` of shape ``[d]``."""

    A: Float[Array, "d d"]
    y: Float[Array, " d"]


class QuadraticBatch(eqx.Module):
    """One minibatch: the target noise ``eps`` of shape ``[d]``."""

    noise: Float[Array, " d"]


class QuadraticFamily(TaskFamily):
    """Returns random ``d``-dimensional least-squares problems.

    Attributes:
        dim: ``d``, the number of parameters (a single vector ``w`` of shape ``[d]``).
        noise_std: standard deviation of the per-batch target noise
            (0 gives deterministic, full-batch problems).
        init_scale: ``w0 ~ N(0, init_scale^2 I)``.
    """

    dim: int = eqx.field(static=True, default=10)
    noise_std: float = eqx.field(static=True, default=0.0)
    init_scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.dim < 1:
            raise ValueError(f"QuadraticFamily: dim must be >= 1, got {self.dim}")
        if self.noise_std < 0:
            raise ValueError(f"QuadraticFamily: noise_std must be >= 0, got {self.noise_std}")

    def sample(self, key: PRNGKeyArray) -> QuadraticTask:
        """Returns a task with ``A_ij, y_i ~ N(0, 1)`` independently."""
        # One flat draw: each random call costs about a second of XLA compile time on CPU.
        z = jax.random.normal(key, (self.dim * (self.dim + 1),))
        return QuadraticTask(A=z[self.dim :].reshape(self.dim, self.dim), y=z[: self.dim])

    def init_params(self, task: QuadraticTask, key: PRNGKeyArray) -> Float[Array, " d"]:
        """Returns ``w0 ~ N(0, init_scale^2 I)`` of shape ``[d]``."""
        del task
        return self.init_scale * jax.random.normal(key, (self.dim,))

    def batch(self, task: QuadraticTask, key: PRNGKeyArray, split: Split) -> QuadraticBatch:
        """Returns target noise ``noise_std * eps``; every split draws the same way."""
        del task
        if split not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train', 'valid' or 'test'")
        return QuadraticBatch(noise=self.noise_std * jax.random.normal(key, (self.dim,)))

    def loss(
        self, params: Float[Array, " d"], task: QuadraticTask, batch: QuadraticBatch
    ) -> Float[Array, ""]:
        """Returns ``||A w - (y + noise)||^2`` (a scalar)."""
        residual = task.A @ params - (task.y + batch.noise)
        return jnp.sum(residual**2)

    def optimum(self, task: QuadraticTask) -> Float[Array, " d"]:
        """Returns the noise-free minimiser ``w* = A^+ y`` (least squares), shape ``[d]``."""
        return jnp.linalg.lstsq(task.A, task.y)[0]
