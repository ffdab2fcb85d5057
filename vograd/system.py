"""The interface every unrolled computation implements."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

Theta = Any  # pytree of arrays: the outer parameters
State = Any  # pytree of arrays: the inner state of one episode


class UnrolledSystem(eqx.Module):
    """A computation stepped many times under outer parameters ``theta``.

    An *episode* starts from ``init(theta, key)`` and lasts ``horizon`` calls of
    ``step``. Each step returns the new state and a scalar loss; the outer
    objective of a window of ``tau`` steps is the mean of its step losses,
    ``L(theta) = (1 / tau) sum_t loss_t``.

    Subclasses provide a ``horizon`` field (usually
    ``horizon: int = eqx.field(static=True)``) and the three methods below, all
    pure and jit/vmap compatible. Randomness comes only from the keys passed
    in: two calls with equal keys must see the same data, which is what lets
    antithetic branches ``theta +- sigma n`` share their minibatches.
    """

    horizon: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init_theta(self, key: PRNGKeyArray) -> Theta:
        """Returns initial outer parameters."""

    @abc.abstractmethod
    def init(self, theta: Theta, key: PRNGKeyArray) -> State:
        """Returns the state at the start of a fresh episode."""

    @abc.abstractmethod
    def step(
        self, theta: Theta, state: State, key: PRNGKeyArray
    ) -> tuple[State, Float[Array, ""]]:
        """Returns the state after one step and that step's scalar loss."""
