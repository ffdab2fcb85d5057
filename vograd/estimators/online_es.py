"""The shared machinery of online ES: persistent perturbed branches, one window at a time.

`PersistentES`, `NoiseReuseES` and `ESSingle` keep, per sample, ``b``
particles (``b = 2``: an antithetic pair ``theta +- eps``; ``b = 1``: a
single ``theta + eps`` branch) that run every window under their own
perturbed parameters on the same step keys, and never backpropagate. They
differ in which perturbation each window runs (``window_noise``) and in the
per-sample formula (``window_estimate``); everything else is here.
"""


import abc
from typing import Any

import equinox as eqx
from equinox import AbstractClassVar
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from vograd.estimators import config, population, sampling
from vograd.estimators.base import EstimatorState
from vograd.estimators.reduce import Samples, finite_samples
from vograd.estimators.sampled import SampledEstimator
from vograd.sharding import constrain_population
from vograd.system import Theta, UnrolledSystem
from vograd.unroll import Particle, UnrollOutput
from vograd.estimators.config import Length

Tree = Any


class OnlineES(SampledEstimator):
    """Abstract: online ES over persistent branches (see module doc).

    Fields: ``num_pairs`` samples (>= 1), ``sigma`` > 0, ``window`` (required:
    an online estimator), ``stagger``, and `SampledEstimator`'s ``chunk``,
    ``unroll``, ``mesh`` / ``mesh_axis``. No burn-in: the branches keep their
    own perturbed states. A sample whose window was non-finite is dropped and
    its branches restart one fresh episode (under the unperturbed theta).
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)
    window: int | None = eqx.field(static=True, default=10)  # None: a clear error below
    stagger: bool = eqx.field(static=True, default=False, kw_only=True)

    branches: AbstractClassVar[int]  # 2: antithetic pairs; 1: a single branch
    component: AbstractClassVar[str]  # the name of the per-sample estimate

    def __check_init__(self):
        config.check_count("num_pairs", self.num_pairs, 1)
        config.check_sigma(self.sigma)
        if self.window is None:
            raise ValueError(
                f"{type(self).__name__} needs an int window (use FullES for whole episodes)"
            )
        config.check_window(self.window, self.chunk)

    @property
    def num_draws(self) -> int:
        return self.num_pairs

    @abc.abstractmethod
    def init_carry(self, theta: Theta, key: PRNGKeyArray) -> Tree:
        """Returns the initial perturbation record, leaves ``[P, ...]``."""

    @abc.abstractmethod
    def make_state(self, particles: Particle, carry: Tree) -> EstimatorState:
        """Returns the state holding the particles and the perturbation record."""

    @abc.abstractmethod
    def window_noise(
        self, system: UnrolledSystem, theta: Theta, state: EstimatorState, key: PRNGKeyArray
    ) -> Tree:
        """Returns the perturbation ``eps`` (leaves ``[P, ...]``) the window runs."""

    @abc.abstractmethod
    def window_estimate(
        self, out: UnrollOutput, losses: Float[Array, "P b"], state: EstimatorState, eps: Tree
    ) -> tuple[Tree, Tree]:
        """Returns (per-sample estimates, next perturbation record) from the
        window's records ``out`` (leaves ``[P, b, steps]``) and losses."""

    def reset_carry(self, carry: Tree) -> Tree:
        """Returns the perturbation record of a dropped sample (default: zeros)."""
        return jax.tree.map(jnp.zeros_like, carry)

    def init(self, system: UnrolledSystem, theta: Theta, key: PRNGKeyArray) -> EstimatorState:
        """Returns fresh particles (the ``b`` branches of a sample equal) and the
        initial perturbation record."""
        config.resolve_window(self.window, self.chunk, system)
        key = population.as_key(key)
        particles = population.init_particles(
            system, theta, key, self.num_pairs, stagger=self.stagger
        )
        particles = jax.tree.map(lambda x: jnp.stack([x] * self.branches, axis=1), particles)
        state = self.make_state(particles, self.init_carry(theta, jax.random.fold_in(key, 1)))
        return constrain_population(state, self.mesh, self.mesh_axis)

    def per_sample(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: EstimatorState,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Samples, EstimatorState]:
        """Returns the per-sample estimates of one window and the next state."""
        size = config.resolve_window(self.window, self.chunk, system)
        length = config.check_length(length, size)
        population.check_state(state, self.num_pairs)
        spec = population.WindowSpec(size, self.chunk, self.unroll, 0, False)
        k_noise, k_steps, k_restart = jax.random.split(population.as_key(key), 3)
        eps = self.window_noise(system, theta, state, k_noise)
        b, num = self.branches, self.num_pairs
        keys = jax.random.split(k_steps, num)
        records = population.run_population(
            system,
            sampling.perturbed(theta, eps, b == 2),
            sampling.merge_pairs(state.particles),
            sampling.repeat_pairs(keys) if b == 2 else keys,
            spec, length, with_grad=False, mesh=self.mesh, mesh_axis=self.mesh_axis,
        )
        split = lambda x: x.reshape((num, b) + x.shape[1:])  # noqa: E731
        out = jax.tree.map(split, records.output)
        losses = records.loss.reshape(num, b)
        g, carry = self.window_estimate(out, losses, state, eps)
        keep = finite_samples(losses, out.losses, g)
        particles = population.restart_dropped(
            system, theta, jax.tree.map(split, records.particle), keep, k_restart, branches=b
        )
        carry = population.where_kept(keep, carry, self.reset_carry(carry))
        state = constrain_population(self.make_state(particles, carry), self.mesh, self.mesh_axis)
        return Samples({self.component: g}, jnp.mean(losses, axis=1), keep, eps), state


def at_episode_start(system: UnrolledSystem, particles: Particle) -> Bool[Array, " P"]:
    """Returns, per sample, whether its next step starts an episode (``t == 0``,
    or ``t >= horizon``: the window's first step restarts it)."""
    t = particles.t[:, 0]
    return (t == 0) | (t >= system.horizon)


def episode_noise(
    system: UnrolledSystem, theta: Theta, particles: Particle, current: Tree, key: PRNGKeyArray,
    sigma: float,
) -> Tree:
    """Returns ``current`` for samples mid-episode and a fresh ``N(0, sigma^2 I)``
    draw for those whose episode starts with this window: one perturbation per episode."""
    fresh = sampling.draw_noise(key, theta, particles.t.shape[0], sigma)
    return population.where_kept(~at_episode_start(system, particles), current, fresh)
