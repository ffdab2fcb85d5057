"""ES-Single (Vicol, Kolter and Swersky, ICML 2023): one perturbation per particle and episode."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp

from vograd.estimators import components, sampling
from vograd.estimators.base import EstimatorState
from vograd.estimators.online_es import OnlineES, episode_noise
from vograd.unroll import Particle

Tree = Any


class ESSingleState(EstimatorState):
    """``particles``: leaves ``[P, 1, ...]`` (one branch per particle, run under
    ``theta + eps``); ``eps``: each particle's perturbation for its current
    episode, leaves ``[P, ...]``."""

    particles: Particle
    eps: Tree


class ESSingle(OnlineES):
    """Returns ``g = mean_i (L_i - b_i) eps_i / sigma^2``: one branch per particle.

    Each of ``num_pairs`` particles runs every window under ``theta + eps_i``,
    one ``eps_i ~ N(0, sigma^2 I)`` per episode, drawn when its episode starts
    at a window and kept to the episode's end (as `NoiseReuseES`). There is
    no antithetic partner: ``L_i`` is the particle's window loss and
    ``b_i = mean_{j != i} L_j`` the leave-one-out mean of the other kept
    particles' losses (0 with none). ``b_i`` does not depend on ``eps_i``,
    so ``E[(L_i - b_i) eps_i] / sigma^2 = E[L_i eps_i] / sigma^2``, the
    score-function gradient of the episode-smoothed objective: unbiased, at
    half the unroll cost of a pair per sample. With staggered episodes the
    baseline mixes episode phases and removes less of the loss.

    Fields as `OnlineES` (``num_pairs`` counts particles here); the component
    is ``"es_single"``.
    """

    branches: ClassVar[int] = 1
    component: ClassVar[str] = "es_single"

    def init_carry(self, theta, key):
        return sampling.draw_noise(key, theta, self.num_pairs, self.sigma)

    def make_state(self, particles, carry) -> ESSingleState:
        return ESSingleState(particles, carry)

    def window_noise(self, system, theta, state, key):
        return episode_noise(system, theta, state.particles, state.eps, key, self.sigma)

    def window_estimate(self, out, losses, state, eps):
        loss = losses[:, 0]
        finite = jnp.isfinite(loss)
        kept = jnp.where(finite, loss, 0.0)
        others = jnp.sum(finite) - finite
        baseline = (jnp.sum(kept) - kept) / jnp.maximum(others, 1)
        return components.scale_noise((loss - baseline) / self.sigma**2, eps), eps

    def reset_carry(self, carry):
        return carry  # a dropped particle restarts at t = 0 and draws a new eps then
