"""The interface of an inner-problem distribution (a *task family*).

A family is an equinox module that holds its data on device (as arrays) and
its architecture as static fields. Sampling a task returns a small pytree of
arrays (class subset, label permutation, input tint, ...) whose shapes are the
same for every task, so that a population of tasks can be vmapped and a whole
inner-training window compiled once.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

Task = Any  # pytree of arrays, fixed shapes across the family
Params = Any  # pytree of arrays: the inner model's weights
Batch = Any  # pytree of arrays: one minibatch
Split = Literal["train", "valid", "test"]


class TaskFamily(eqx.Module):
    """A distribution over inner problems of fixed shapes.

    Concrete families implement the four methods below; every method is pure
    and jit/vmap-compatible (``split`` is a static Python string).
    """

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray) -> Task:
        """Returns one task configuration (a pytree of arrays)."""

    @abc.abstractmethod
    def init_params(self, task: Task, key: PRNGKeyArray) -> Params:
        """Returns freshly initialised inner parameters for ``task``."""

    @abc.abstractmethod
    def batch(self, task: Task, key: PRNGKeyArray, split: Split) -> Batch:
        """Returns one minibatch of ``split`` for ``task``, sampled on device."""

    @abc.abstractmethod
    def loss(self, params: Params, task: Task, batch: Batch) -> Float[Array, ""]:
        """Returns the mean inner loss of ``params`` on ``batch``."""
