"""Persistent evolution strategies (Vicol, Metz and Sohl-Dickstein, ICML 2021)."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from vograd.estimators import sampling
from vograd.estimators.base import EstimatorState
from vograd.estimators.online_es import OnlineES
from vograd.unroll import Particle

Tree = Any


class PESState(EstimatorState):
    """Persistent PES particles: each pair keeps BOTH branches' states.

    ``particles``: leaves ``[P, 2, ...]`` (index 0 is the ``+`` branch, which
    has run ``theta + eps_k`` in each window ``k`` of its episode, index 1 the
    ``-`` branch, ``theta - eps_k``); ``xi``: the sum of those ``eps_k`` over
    the windows of the current episode so far, leaves ``[P, ...]``.
    """

    particles: Particle
    xi: Tree


def pes_samples(
    diff: Float[Array, "P steps"],
    is_reset: Bool[Array, "P steps"],
    mask: Bool[Array, "P steps"],
    xi: Tree,
    eps: Tree,
    sigma: float,
) -> tuple[Tree, Tree]:
    """Returns (per-pair PES estimates, next accumulated perturbation).

    ``diff[i, t] = l+_t - l-_t`` (0 where the step did not run), ``is_reset``
    and ``mask`` the window's ``[P, steps]`` records. Steps before the first
    reset in the window depend on every perturbation of the episode so far,
    ``xi + eps``; steps from a reset on depend only on this window's ``eps``:
    ``g_i = sum_t (l+_t - l-_t) / n xi_t / (2 sigma^2)``.
    """
    n = jnp.maximum(jnp.sum(mask, axis=1), 1)
    after = jnp.cumsum(is_reset & mask, axis=1) > 0
    before_sum = jnp.sum(jnp.where(after, 0.0, diff), axis=1) / n / (2.0 * sigma**2)
    after_sum = jnp.sum(jnp.where(after, diff, 0.0), axis=1) / n / (2.0 * sigma**2)
    restarted = jnp.any(after, axis=1)

    def per_leaf(x, e):
        col = lambda v: v.reshape((-1,) + (1,) * (e.ndim - 1))  # noqa: E731
        g = col(before_sum) * (x + e) + col(after_sum) * e
        return g, jnp.where(col(restarted), e, x + e)

    pairs = jax.tree.map(per_leaf, xi, eps)
    # Transpose by structure, not by "is a tuple": theta may hold tuples itself.
    return jax.tree.transpose(jax.tree.structure(xi), jax.tree.structure((0, 0)), pairs)


class PersistentES(OnlineES):
    """Returns the PES estimate ``mean_i sum_t (l+_t - l-_t) / n xi_{i,t} / (2 sigma^2)``.

    Each antithetic pair keeps two particles with their own states. Every
    window draws a FRESH ``eps_i ~ N(0, sigma^2 I)``: the ``+`` particle runs
    the window under ``theta + eps_i``, the ``-`` particle under
    ``theta - eps_i``, on the same step keys. ``xi`` is the sum of the ``eps``
    of the current episode (``xi += eps`` per window, back to ``eps`` alone for
    the steps after an episode restarts inside the window), so the estimate
    accounts for the influence of every earlier window's perturbation.

    Objective: an episode of ``K`` windows then runs under ``theta + eps_1``,
    ..., ``theta + eps_K``, independent perturbations, one per window; PES
    is unbiased for the gradient of that objective,
    ``E_{eps_1..K}[L(theta + eps_1, ..., theta + eps_K)]``, smoothed
    independently per window. It is NOT the one-perturbation-per-episode
    objective ``E_eps[L(theta + eps)]`` of `FullES` and `NoiseReuseES`; the
    two have the same gradient only when the episode loss is quadratic in
    theta. The variance grows with the number of windows per episode.

    Fields as `OnlineES`. A pair whose window was non-finite is dropped and
    restarts a fresh episode with ``xi = 0``.
    """

    branches: ClassVar[int] = 2
    component: ClassVar[str] = "pes"

    def init_carry(self, theta, key):
        """Returns ``xi = 0``."""
        return jax.tree.map(
            lambda t: jnp.zeros((self.num_pairs,) + jnp.shape(t), jnp.result_type(t)), theta
        )

    def make_state(self, particles, carry) -> PESState:
        return PESState(particles, carry)

    def window_noise(self, system, theta, state, key):
        return sampling.draw_noise(key, theta, self.num_pairs, self.sigma)

    def window_estimate(self, out, losses, state, eps):
        diff = out.losses[:, 0] - out.losses[:, 1]
        return pes_samples(diff, out.is_reset[:, 0], out.mask[:, 0], state.xi, eps, self.sigma)
