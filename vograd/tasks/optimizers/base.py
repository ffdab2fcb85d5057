"""The interface of a learned optimizer.

A learned optimizer is a pure update rule with outer parameters ``theta``.
Training it means estimating gradients with respect to ``theta`` through many
applications of ``update``; using it means fixing ``theta`` and calling
``as_optax(theta)``, which returns an ordinary ``optax.GradientTransformation``.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import optax
from jaxtyping import PRNGKeyArray

Theta = Any  # pytree of arrays: the optimizer's own weights
OptState = Any  # pytree of arrays: per-parameter accumulators, step count, ...
Params = Any
Updates = Any


class LearnedOptimizer(eqx.Module):
    """An update rule ``(theta, grads, state, params) -> (updates, state)``.

    ``updates`` are added to the parameters (``optax.apply_updates``), exactly
    as with optax transformations.
    """

    @abc.abstractmethod
    def init_theta(self, key: PRNGKeyArray) -> Theta:
        """Returns initial outer parameters (meta-initialisation)."""

    @abc.abstractmethod
    def init(self, theta: Theta, params: Params) -> OptState:
        """Returns the optimizer state for fresh inner parameters ``params``."""

    @abc.abstractmethod
    def update(
        self, theta: Theta, grads: Updates, state: OptState, params: Params
    ) -> tuple[Updates, OptState]:
        """Returns the additive updates for ``params`` and the new state."""

    def as_optax(self, theta: Theta) -> optax.GradientTransformation:
        """Returns this rule with ``theta`` fixed, as an optax transformation."""
        theta = jax.lax.stop_gradient(theta)

        def init_fn(params: Params) -> OptState:
            return self.init(theta, params)

        def update_fn(grads: Updates, state: OptState, params: Params | None = None):
            if params is None:
                raise ValueError(
                    f"{type(self).__name__} needs the current parameters: call "
                    "update(grads, state, params)."
                )
            return self.update(theta, grads, state, params)

        return optax.GradientTransformation(init_fn, update_fn)
