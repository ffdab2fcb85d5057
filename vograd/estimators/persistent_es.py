"""Persistent evolution strategies (Vicol, Metz and Sohl-Dickstein, ICML 2021)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Int, PRNGKeyArray

from vograd.estimators import config, population, sampling
from vograd.estimators.base import Diagnostics, Estimator
from vograd.estimators.reduce import Samples, finite_samples, mean_estimate
from vograd.sharding import check_mesh, constrain_population
from vograd.system import Theta, UnrolledSystem
from vograd.unroll import Particle

Tree = Any


class PESState(eqx.Module):
    """Persistent PES particles: each pair keeps BOTH branches' states.

    ``particles``: leaves ``[P, 2, ...]`` (index 0 runs ``theta + xi``, 1 runs
    ``theta - xi``); ``xi``: the perturbation accumulated by the ``+`` branch
    over the windows of its current episode, leaves ``[P, ...]``.
    """

    particles: Particle
    xi: Tree


def pes_samples(
    diff: jax.Array, is_reset: jax.Array, mask: jax.Array, xi: Tree, eps: Tree, sigma: float
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


class PersistentES(Estimator):
    """Returns the PES estimate ``mean_i sum_t (l+_t - l-_t) / n xi_{i,t} / (2 sigma^2)``.

    Each antithetic pair keeps two particles with their own states, run under
    ``theta + eps_i`` and ``theta - eps_i`` with a fresh ``eps_i`` every window,
    on the same step keys. ``xi`` accumulates the ``eps`` of the current
    episode (``xi += eps`` per window, back to ``eps`` alone for the steps after
    an episode restarts inside the window), so the estimate accounts for the
    influence of every earlier window's perturbation: unbiased across
    truncations for the smoothed objective, at a variance that grows with the
    number of windows per episode.

    Fields: ``num_pairs`` (>= 1), ``sigma`` > 0, ``window`` (required: PES is
    an online estimator), ``chunk``, ``unroll``, ``stagger``, ``mesh`` /
    ``mesh_axis`` as `Reparameterization`. There is no burn-in: ``xi``
    already accounts for the history, and re-running it under another theta
    would break that bookkeeping. A pair whose window was non-finite is
    dropped and restarts a fresh episode with ``xi = 0``.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    window: int = eqx.field(static=True, default=10)
    chunk: int | None = eqx.field(static=True, default=None)
    unroll: int | bool = eqx.field(static=True, default=1)
    stagger: bool = eqx.field(static=True, default=False)
    mesh: Mesh | None = eqx.field(static=True, default=None)
    mesh_axis: str = eqx.field(static=True, default="population")

    def __check_init__(self):
        config.check_count("num_pairs", self.num_pairs, 1)
        config.check_sigma(self.sigma)
        if self.window is None:
            raise ValueError("PersistentES needs an int window (use FullES for whole episodes)")
        config.check_window(self.window, self.chunk)
        check_mesh(self.mesh, self.mesh_axis, self.num_pairs)

    def init(self, system: UnrolledSystem, theta: Theta, key: PRNGKeyArray) -> PESState:
        """Returns fresh particles (both branches of a pair equal) and ``xi = 0``."""
        config.resolve_window(self.window, self.chunk, system)
        num = self.num_pairs
        particles = population.init_particles(
            system, theta, population.as_key(key), num, stagger=self.stagger
        )
        particles = jax.tree.map(lambda x: jnp.stack([x, x], axis=1), particles)
        xi = jax.tree.map(lambda t: jnp.zeros((num,) + jnp.shape(t), jnp.result_type(t)), theta)
        return constrain_population(PESState(particles, xi), self.mesh, self.mesh_axis)

    def per_sample(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: PESState,
        key: PRNGKeyArray,
        *,
        length: int | Int[Array, ""] | None = None,
    ) -> tuple[Samples, PESState]:
        """Returns the per-pair PES estimates (component ``"pes"``) and the next state."""
        size = config.resolve_window(self.window, self.chunk, system)
        length = config.check_length(length, size)
        population.check_state(state, self.num_pairs)
        spec = population.WindowSpec(size, self.chunk, self.unroll, 0, False)
        k_noise, k_steps, k_restart = jax.random.split(population.as_key(key), 3)
        eps = sampling.draw_noise(k_noise, theta, self.num_pairs, self.sigma)
        records = population.run_population(
            system,
            sampling.perturbed(theta, eps, True),
            sampling.merge_pairs(state.particles),
            sampling.repeat_pairs(jax.random.split(k_steps, self.num_pairs)),
            spec, length, with_grad=False, mesh=self.mesh, mesh_axis=self.mesh_axis,
        )
        out = sampling.split_pairs(records.output)
        diff = out.losses[:, 0] - out.losses[:, 1]
        g, xi = pes_samples(diff, out.is_reset[:, 0], out.mask[:, 0], state.xi, eps, self.sigma)
        losses = records.loss.reshape(self.num_pairs, 2)
        keep = finite_samples(losses, out.losses, g)
        particles = population.restart_dropped(
            system, theta, sampling.split_pairs(records.particle), keep, k_restart, branches=2
        )
        xi = population.where_kept(keep, xi, jax.tree.map(jnp.zeros_like, xi))
        state = constrain_population(PESState(particles, xi), self.mesh, self.mesh_axis)
        return Samples({"pes": g}, jnp.mean(losses, axis=1), keep, eps), state

    def estimate(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: PESState,
        key: PRNGKeyArray,
        *,
        length: int | Int[Array, ""] | None = None,
    ) -> tuple[Tree, PESState, Diagnostics]:
        """Returns (gradient, next state, diagnostics) of one window; ``length`` as
        `WindowedEstimator.per_sample`."""
        samples, state = self.per_sample(system, theta, state, key, length=length)
        grad, diag = mean_estimate(samples, "pes")
        return grad, state, diag
