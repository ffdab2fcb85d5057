"""The machinery shared by the estimators whose samples start from one particle.

`Reparameterization`, `EvolutionStrategies`, `Merged`, `TruncatedBackprop`,
`FullES` and `FullBackprop` are all: draw ``P`` samples, each one particle run
through the window under ``theta + eps_i`` and (antithetic) ``theta - eps_i``
on the same step keys, or under ``theta`` itself when there is no smoothing;
turn the branches' losses and gradients into per-sample estimates; drop
non-finite samples; reduce. They differ only in the per-sample formula
(``components``) and the reduction (``reduce``).
"""


import abc
from typing import Any, ClassVar

import equinox as eqx
from equinox import AbstractClassVar
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.estimators import config, population, sampling
from vograd.estimators.reduce import Samples, finite_samples
from vograd.estimators.sampled import SampledEstimator
from vograd.sharding import constrain_population
from vograd.system import Theta, UnrolledSystem
from vograd.estimators.config import Length

Tree = Any


class Draws(eqx.Module):
    """The raw results of ``P`` samples of ``b`` branches (``b = 2`` antithetic).

    ``eps``: the perturbations ``[P, ...]`` (None without smoothing);
    ``loss``: ``[P, b]`` window losses (branch 0 is ``theta + eps``);
    ``grad``: leaves ``[P, b, ...]``, or None when no gradient was taken.
    """

    eps: Tree | None
    loss: Float[Array, "P b"]
    grad: Tree | None


class WindowedEstimator(SampledEstimator):
    """Abstract base: per-sample windows from shared particles (see module doc).

    Shared fields (beyond `SampledEstimator`'s): ``window`` compiled steps
    per estimate (None: full episodes: no persistent state, ``init`` returns
    None, and every estimate starts fresh episodes under each branch's own
    theta); ``burn_in`` steps re-run under the current theta before each
    window; ``stagger`` initial episode offsets. Subclasses declare their
    sample count and the class constants ``paired`` (antithetic pairs) and
    ``needs_grad``, and implement ``components``.
    """

    window: int | None = eqx.field(static=True, default=None, kw_only=True)
    burn_in: int = eqx.field(static=True, default=0, kw_only=True)
    stagger: bool = eqx.field(static=True, default=False, kw_only=True)

    paired: AbstractClassVar[bool]
    needs_grad: AbstractClassVar[bool]

    def __check_init__(self):
        config.check_window(self.window, self.chunk, self.burn_in)

    @property
    def noise_scale(self) -> float:
        """Returns sigma, or 0.0 for an unsmoothed estimator."""
        return 0.0

    @abc.abstractmethod
    def components(self, draws: Draws) -> dict[str, Tree]:
        """Returns the per-sample estimates (leaves ``[P, ...]``) by name."""

    @property
    def branches(self) -> int:
        """Returns the branches per sample: 2 for antithetic pairs, else 1."""
        return 2 if self.paired and self.noise_scale > 0 else 1

    def window_spec(self, system: UnrolledSystem) -> population.WindowSpec:
        """Returns the static window description for ``system`` (checks the horizon)."""
        size = config.resolve_window(self.window, self.chunk, system)
        return population.WindowSpec(
            num_steps=size,
            chunk=self.chunk,
            unroll=self.unroll,
            tail=min(self.burn_in, size),
            fresh=self.window is None,
        )

    def init(
        self, system: UnrolledSystem, theta: Theta, key: PRNGKeyArray
    ) -> population.PopulationState | None:
        """Returns the persistent particles (None for full episodes).

        Particles start fresh under ``theta`` (staggered if ``stagger``); one
        per sample, shared by both branches of a pair.
        """
        self.window_spec(system)
        if self.window is None:
            return None
        state = population.init_population_state(
            system, theta, population.as_key(key), self.num_draws,
            stagger=self.stagger, burn_in=self.burn_in > 0,
        )
        return constrain_population(state, self.mesh, self.mesh_axis)

    def per_sample(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: population.PopulationState | None,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Samples, population.PopulationState | None]:
        """Returns the per-sample estimates of one window and the next state.

        ``length`` (dynamic, ``1 <= length <= window``): run only the first
        ``length`` steps of the compiled window; one compilation serves all.
        """
        spec = self.window_spec(system)
        length = config.check_length(length, spec.num_steps)
        key = population.as_key(key)
        k_noise, k_steps, k_restart = jax.random.split(key, 3)
        num, b = self.num_draws, self.branches

        eps = None
        if self.noise_scale > 0:
            eps = sampling.draw_noise(k_noise, theta, num, self.noise_scale)
            thetas = sampling.perturbed(theta, eps, self.branches == 2)
        else:
            thetas = sampling.broadcast(theta, num)
        draw_keys = jax.random.split(k_steps, num)
        particles = None
        if not spec.fresh:
            population.check_state(state, num)
            particles = population.replay_burn_in(system, theta, state, spec)

        # A pair's two branches start from one particle on one key: forward-only estimators
        # run them as a nested vmap (`run_population`'s ``shared_pairs``), so what does not
        # depend on theta (the batches) is computed once per pair. Not in reverse mode: there
        # XLA:CPU (jax 0.10.2) crashed with a segmentation fault on the `metz2019` mixed
        # preset's CNN family (docs/performance.md).
        shared = b == 2 and not self.needs_grad
        keys = draw_keys
        if b == 2 and not shared:
            keys = sampling.repeat_pairs(draw_keys)
            if particles is not None:
                particles = sampling.repeat_pairs(particles)
        records = population.run_population(
            system, thetas, particles, keys, spec, length,
            with_grad=self.needs_grad, mesh=self.mesh, mesh_axis=self.mesh_axis,
            shared_pairs=shared,
        )
        per_draw = lambda x: x.reshape((num, b) + x.shape[1:])  # noqa: E731
        draws = Draws(eps, per_draw(records.loss), jax.tree.map(per_draw, records.grad))
        components = self.components(draws)
        keep = finite_samples(draws.loss, draws.grad, components)
        samples = Samples(components, jnp.mean(draws.loss, axis=1), keep, eps)
        if spec.fresh:
            return samples, None
        return samples, self._next_state(
            system, theta, records, draw_keys, keep, length, spec, k_restart
        )

    def _next_state(self, system, theta, records, draw_keys, keep, length, spec, key):
        # Each sample continues from its theta + eps branch (branch 0).
        first = sampling.positive_branch if self.branches == 2 else (lambda x: x)
        particles = population.restart_dropped(
            system, theta, first(records.particle), keep, key
        )
        replay = None
        if spec.tail:
            anchors = population.where_kept(keep, first(records.anchor), particles)
            tail_keys = jax.vmap(lambda k: population.window_keys(k)[1])(draw_keys)
            replay = population.Replay(
                anchors, jax.random.key_data(tail_keys), jnp.minimum(length, spec.tail)
            )
        state = population.PopulationState(particles, replay)
        return constrain_population(state, self.mesh, self.mesh_axis)


class SmoothedEstimator(WindowedEstimator):
    """Abstract: a windowed estimator of the Gaussian-smoothed objective.

    Fields: ``num_pairs`` samples (>= 1; each an antithetic pair when
    ``paired``), ``sigma`` > 0 the standard deviation of the perturbation.
    """

    num_pairs: int = eqx.field(static=True, default=8)
    sigma: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        config.check_count("num_pairs", self.num_pairs, self.min_pairs, self.min_pairs_reason)
        config.check_sigma(self.sigma)

    min_pairs: ClassVar[int] = 1
    min_pairs_reason: ClassVar[str] = ""

    @property
    def num_draws(self) -> int:
        return self.num_pairs

    @property
    def noise_scale(self) -> float:
        return self.sigma
