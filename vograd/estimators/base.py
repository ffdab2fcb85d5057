"""The interface of an outer-gradient estimator, and what it reports."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vograd.system import Theta, UnrolledSystem

Gradient = Any  # pytree shaped like theta
EstimatorState = Any  # pytree of arrays: persistent particles, accumulators


class Diagnostics(eqx.Module):
    """What one estimate saw, for logging and for the merge.

    - ``loss``: mean outer loss over the kept samples (both antithetic branches);
    - ``variance``: for each component (``"rp"``, ``"es"``, ``"tbptt"``,
      ``"pes"``), the total empirical variance of its per-sample estimates, i.e.
      ``sum_j Var_s[g_s[j]]`` (unbiased over the kept samples);
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


class Estimator(eqx.Module):
    """Estimates the gradient of an outer objective with respect to ``theta``.

    Concrete estimators are final classes holding only static configuration
    (sample counts, sigma, window). Everything that changes between calls
    lives in the explicit ``EstimatorState`` (persistent particles, PES
    accumulators), so ``estimate`` is a pure function that jits once.

    ``estimate`` computes per-sample estimates internally and reduces them at
    the end; samples with a non-finite loss or gradient are dropped and counted,
    never averaged in.
    """

    @abc.abstractmethod
    def init(
        self, system: UnrolledSystem, theta: Theta, key: PRNGKeyArray
    ) -> EstimatorState:
        """Returns the estimator's initial state (e.g. persistent particles)."""

    @abc.abstractmethod
    def estimate(
        self,
        system: UnrolledSystem,
        theta: Theta,
        state: EstimatorState,
        key: PRNGKeyArray,
        *,
        length: int | Int[Array, ""] | None = None,
    ) -> tuple[Gradient, EstimatorState, Diagnostics]:
        """Returns the gradient estimate, the next state and diagnostics.

        ``length`` (optional, dynamic): run only the first ``length`` steps of
        the compiled window, ``1 <= length <= window``; a new value does not
        recompile, so an outer loop compiles one window size per bucket.
        """


def check_positive(name: str, value: float) -> None:
    """Raises a clear ValueError unless ``value > 0``."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def zero_diagnostic() -> Float[Array, ""]:
    """Returns a 0.0 scalar in the default float dtype."""
    return jnp.zeros((), jnp.result_type(float))
