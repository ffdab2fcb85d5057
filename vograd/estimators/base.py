"""The interface of an outer-gradient estimator, its state, and what it reports."""


import abc
from typing import Any, ClassVar

import equinox as eqx
from equinox import AbstractVar
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.system import Theta, UnrolledSystem
from vograd.unroll import Particle
from vograd.estimators.config import Length

Gradient = Any  # pytree shaped like theta


class Diagnostics(eqx.Module):
    """What one estimate saw, for logging and for the merge.

    - ``loss``: mean outer loss over the kept samples (both antithetic branches);
    - ``variance``: for each component (``"rp"``, ``"es"``, ``"tbptt"``,
      ``"pes"``, ``"nres"``, ``"es_single"``), the total empirical variance of
      its per-sample estimates, i.e. ``sum_j Var_s[g_s[j]]`` (unbiased over the
      kept samples);
    - ``weight``: each component's weight in the returned gradient (for a
      per-element merge, the mean weight over theta's elements);
    - ``num_dropped``: samples dropped because a loss or gradient was
      non-finite; ``num_samples``: samples drawn (antithetic pairs count once).
    """

    loss: Float[Array, ""]
    variance: dict[str, Float[Array, ""]]
    weight: dict[str, Float[Array, ""]]
    num_dropped: Int[Array, ""]
    num_samples: int = eqx.field(static=True)

    @property
    def all_dropped(self):
        """True when no sample survived: the caller must skip the update."""
        return self.num_dropped >= self.num_samples


class EstimatorState(eqx.Module):
    """Abstract: the persistent state of a truncated estimator.

    ``particles``: the episodes in progress, a `Particle` whose leaves carry
    leading population axes (``[P]``, or ``[P, branches]`` when every branch
    keeps its own state). Full-episode estimators have no state (None).
    """

    particles: AbstractVar[Particle]

    def steps_left(self, horizon: int) -> int:
        """Returns ``min over particles of (horizon - t)`` (host-side).

        A particle with ``t >= horizon`` starts a fresh episode on its next
        step, so it has a whole ``horizon`` left.
        """
        t = np.asarray(self.particles.t)
        return int(np.min(np.where(t >= horizon, horizon, horizon - t)))


class Estimator(eqx.Module):
    """Estimates the gradient of an outer objective with respect to ``theta``.

    Concrete estimators are final classes holding only static configuration
    (sample counts, sigma, window). Everything that changes between calls
    lives in the explicit state (an `EstimatorState`: persistent particles,
    PES accumulators; None for full episodes), so ``estimate`` is a pure
    function that jits once.

    ``window``: the compiled truncation window, None for full episodes (the
    default here; truncated estimators declare it as a field, and
    `vograd.train` replaces it per schedule bucket). ``chunk``: the
    ``jax.checkpoint`` chunk of the window, None for none.

    ``estimate`` computes per-sample estimates internally and reduces them at
    the end; samples with a non-finite loss or gradient are dropped and counted,
    never averaged in.
    """

    window: ClassVar[int | None] = None
    chunk: ClassVar[int | None] = None

    @abc.abstractmethod
    def init(self, system: UnrolledSystem, theta: Theta, key: PRNGKeyArray) -> Any:
        """Returns the estimator's initial state (an `EstimatorState`, or None)."""

    @abc.abstractmethod
    def estimate(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: Any,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Gradient, Any, Diagnostics]:
        """Returns the gradient estimate, the next state and diagnostics.

        ``length`` (optional, dynamic): run only the first ``length`` steps of
        the compiled window, ``1 <= length <= window``; a new value does not
        recompile, so an outer loop compiles one window size per bucket.
        """

    def per_sample(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: Any,
        key: PRNGKeyArray,
        *,
        length: Length = None,
    ) -> tuple[Any, Any]:
        """Returns ``(samples, next state)``: the `vograd.estimators.Samples`
        that ``estimate`` reduces. Every shipped estimator provides it; a
        custom estimator that only implements ``estimate`` raises here."""
        raise NotImplementedError(
            f"{type(self).__name__} does not expose per-sample estimates (only estimate)"
        )

    def steps_left(self, system: UnrolledSystem, state: Any) -> int | None:
        """Returns the steps left in the most advanced episode of ``state``
        (`EstimatorState.steps_left`), or None without persistent particles."""
        if isinstance(state, EstimatorState):
            return state.steps_left(int(system.horizon))
        return None


def check_positive(name: str, value: float) -> None:
    """Raises a clear ValueError unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def zero_diagnostic() -> Float[Array, ""]:
    """Returns a 0.0 scalar in the default float dtype."""
    return jnp.zeros((), jnp.result_type(float))
