"""Whole-episode estimators: every estimate runs complete, fresh episodes.

Thin wrappers: each builds the corresponding windowed estimator with
``window=None`` (window = horizon, fresh episodes started under each branch's
own theta, no persistent state) and forwards to it.
"""

from __future__ import annotations

import abc

import equinox as eqx

from vograd.estimators.evolution_strategies import EvolutionStrategies
from vograd.estimators.sampled import SampledEstimator
from vograd.estimators.truncated_backprop import TruncatedBackprop
from vograd.estimators.windowed import WindowedEstimator


class _FullEpisode(SampledEstimator):
    """Abstract: forwards to `inner`, a windowed estimator with ``window=None``
    (``window`` is the class constant None: full episodes have no truncation)."""

    @abc.abstractmethod
    def inner(self) -> WindowedEstimator:
        """Returns the equivalent windowed estimator."""

    def __check_init__(self):
        self.inner()  # its own checks raise the errors

    @property
    def num_draws(self) -> int:
        return self.inner().num_draws

    def init(self, system, theta, key):
        """Returns None after checking the configuration against ``system``."""
        return self.inner().init(system, theta, key)

    def per_sample(self, system, theta, state, key, *, length=None):
        """Returns per-sample estimates; see `WindowedEstimator.per_sample`;
        ``length`` shortens the episodes (default: the horizon)."""
        return self.inner().per_sample(system, theta, state, key, length=length)

    def reduce(self, samples):
        return self.inner().reduce(samples)

    def _shared(self) -> dict:
        return dict(chunk=self.chunk, unroll=self.unroll, mesh=self.mesh, mesh_axis=self.mesh_axis)


class FullES(_FullEpisode):
    """Returns antithetic ES over whole episodes: ``mean_i (L+ - L-) eps_i / (2 sigma^2)``.

    Same as ``EvolutionStrategies(window=None, ...)``.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)

    def inner(self) -> EvolutionStrategies:
        return EvolutionStrategies(num_pairs=self.num_pairs, sigma=self.sigma, **self._shared())


class FullBackprop(_FullEpisode):
    """Returns ``mean_i grad L_episode_i(theta)``: backprop through whole episodes.

    Same as ``TruncatedBackprop(window=None, ...)``; unbiased for the
    unsmoothed episode objective (and liable to explode on long or chaotic
    episodes, which is what the smoothed estimators are for). Use ``chunk`` to
    bound memory on long horizons.
    """

    num_particles: int = eqx.field(static=True, default=8)

    def inner(self) -> TruncatedBackprop:
        return TruncatedBackprop(num_particles=self.num_particles, **self._shared())
