"""Noise-reuse evolution strategies (Li, Harrison, Sohl-Dickstein, Smith and Metz, 2023)."""

from __future__ import annotations

from typing import Any, ClassVar

from vograd.estimators import components, sampling
from vograd.estimators.base import EstimatorState
from vograd.estimators.online_es import OnlineES, episode_noise
from vograd.unroll import Particle

Tree = Any


class NoiseReuseState(EstimatorState):
    """``particles``: leaves ``[P, 2, ...]`` (index 0 runs ``theta + eps``, 1
    ``theta - eps``); ``eps``: each pair's perturbation for its current
    episode, leaves ``[P, ...]``."""

    particles: Particle
    eps: Tree


class NoiseReuseES(OnlineES):
    """Returns ``g = mean_i (L+_i - L-_i) eps_i / (2 sigma^2)`` with ONE ``eps_i`` per episode.

    Each antithetic pair keeps two particles, run under ``theta + eps_i`` and
    ``theta - eps_i`` on the same step keys; ``eps_i ~ N(0, sigma^2 I)`` is
    drawn when the pair's episode starts at a window (``t = 0`` or
    ``t >= horizon``) and reused for every later window of that episode.
    ``L+-_i`` are the window's mean losses. At fixed theta an episode thus
    runs under one perturbation, as in `FullES`, and the mean of the window
    estimates over an episode of ``K`` equal windows is an unbiased estimate
    of the gradient of the episode-smoothed objective ``E_eps[L(theta + eps)]``
    (the episode loss being the mean of its window losses); its variance
    does not grow with ``K`` as PES's does: the lowest among online ES
    estimators (Li et al. 2023).

    An episode that restarts inside a window keeps the pair's current
    ``eps`` (the window ran one theta); it is used to that episode's end, so
    every episode still runs under a single perturbation. Fields as
    `OnlineES`; the component is ``"nres"``.
    """

    branches: ClassVar[int] = 2
    component: ClassVar[str] = "nres"

    def init_carry(self, theta, key):
        return sampling.draw_noise(key, theta, self.num_pairs, self.sigma)

    def make_state(self, particles, carry) -> NoiseReuseState:
        return NoiseReuseState(particles, carry)

    def window_noise(self, system, theta, state, key):
        return episode_noise(system, theta, state.particles, state.eps, key, self.sigma)

    def window_estimate(self, out, losses, state, eps):
        diff = (losses[:, 0] - losses[:, 1]) / (2.0 * self.sigma**2)
        return components.scale_noise(diff, eps), eps

    def reset_carry(self, carry):
        return carry  # a dropped pair restarts at t = 0 and draws a new eps then
