"""Whole-episode estimators: every estimate runs complete, fresh episodes.

Thin wrappers: each builds the corresponding windowed estimator with
``window=None`` (window = horizon, fresh episodes started under each branch's
own theta, no persistent state) and forwards to it.
"""

from __future__ import annotations

import abc

import equinox as eqx
from jax.sharding import Mesh

from vograd.estimators.base import Estimator
from vograd.estimators.evolution_strategies import EvolutionStrategies
from vograd.estimators.truncated_backprop import TruncatedBackprop
from vograd.estimators.windowed import WindowedEstimator


class _FullEpisode(Estimator):
    """Abstract: forwards to `inner`, a windowed estimator with ``window=None``."""

    @abc.abstractmethod
    def inner(self) -> WindowedEstimator:
        """Returns the equivalent windowed estimator."""

    def __check_init__(self):
        self.inner()  # its own checks raise the errors

    @property
    def window(self) -> None:
        """Full episodes have no truncation window."""
        return None

    def init(self, system, theta, key):
        """Returns None after checking the configuration against ``system``."""
        return self.inner().init(system, theta, key)

    def per_sample(self, system, theta, state, key, *, length=None):
        """Returns per-sample estimates; see `WindowedEstimator.per_sample`."""
        return self.inner().per_sample(system, theta, state, key, length=length)

    def estimate(self, system, theta, state, key, *, length=None):
        """Returns (gradient, None, diagnostics) of ``num`` fresh whole episodes;
        ``length`` shortens the episodes (default: the horizon)."""
        return self.inner().estimate(system, theta, state, key, length=length)


class FullES(_FullEpisode):
    """Returns antithetic ES over whole episodes: ``mean_i (L+ - L-) eps_i / (2 sigma^2)``.

    Same as ``EvolutionStrategies(window=None, ...)``.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def inner(self) -> EvolutionStrategies:
        return EvolutionStrategies(
            num_pairs=self.num_pairs, sigma=self.sigma, window=None, chunk=self.chunk,
            unroll=self.unroll, mesh=self.mesh, mesh_axis=self.mesh_axis,
        )


class FullBackprop(_FullEpisode):
    """Returns ``mean_i grad L_episode_i(theta)``: backprop through whole episodes.

    Same as ``TruncatedBackprop(window=None, ...)``; unbiased for the
    unsmoothed episode objective (and liable to explode on long or chaotic
    episodes, which is what the smoothed estimators are for). Use ``chunk`` to
    bound memory on long horizons.
    """

    num_particles: int = eqx.field(static=True, default=8)
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def inner(self) -> TruncatedBackprop:
        return TruncatedBackprop(
            num_particles=self.num_particles, window=None, chunk=self.chunk,
            unroll=self.unroll, mesh=self.mesh, mesh_axis=self.mesh_axis,
        )
