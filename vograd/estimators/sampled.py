"""The shared base of the shipped estimators: per-sample estimates, then a reduction."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jax.sharding import Mesh
from jaxtyping import Array, Int, PRNGKeyArray

from vograd.estimators.base import Diagnostics, Estimator
from vograd.estimators.reduce import Samples, mean_estimate
from vograd.sharding import check_mesh
from vograd.system import Theta, UnrolledSystem
from vograd.estimators.config import Length

Tree = Any


class SampledEstimator(Estimator):
    """Abstract: ``estimate = reduce(per_sample(...))``, with the shared configuration.

    The configuration every population-based estimator has is declared here,
    once: ``chunk`` steps per ``jax.checkpoint`` chunk (must divide the
    window); ``unroll`` of the inner ``lax.scan``; ``mesh`` / ``mesh_axis``
    shard the population (`vograd.sharding`). Subclasses add their own fields
    and implement ``init``, ``per_sample``, ``num_draws`` and, for more than
    one component, ``reduce``.
    """

    chunk: int | None = eqx.field(static=True, default=None, kw_only=True)
    unroll: int | bool = eqx.field(static=True, default=1, kw_only=True)
    mesh: Mesh | None = eqx.field(static=True, default=None, kw_only=True)
    mesh_axis: str = eqx.field(static=True, default="population", kw_only=True)

    @property
    @abc.abstractmethod
    def num_draws(self) -> int:
        """Returns the number of independent samples ``P`` (pairs or particles)."""

    def __check_init__(self):
        check_mesh(self.mesh, self.mesh_axis, self.num_draws)

    @abc.abstractmethod
    def per_sample(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: Any,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Samples, Any]:
        """Returns the per-sample estimates of one window and the next state."""

    def reduce(self, samples: Samples) -> tuple[Tree, Diagnostics]:
        """Returns the gradient and diagnostics: the mean of the only component."""
        (name,) = samples.components
        return mean_estimate(samples, name)

    def estimate(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: Any,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Tree, Any, Diagnostics]:
        """Returns (gradient, next state, diagnostics) of one window; see ``per_sample``."""
        samples, state = self.per_sample(system, theta, state, key, length=length)
        grad, diag = self.reduce(samples)
        return grad, state, diag
