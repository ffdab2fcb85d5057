"""``LearnedOptimizerSystem``: training an inner problem with a learned optimizer, as an
`vograd.UnrolledSystem` whose outer parameters are the optimizer's weights."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import vograd
from vograd.tasks.optimizers.base import LearnedOptimizer, OptState, Theta
from vograd.tasks.problems.base import Params, Task, TaskFamily

OUTER_OBJECTIVES = ("train", "valid")


class InnerState(eqx.Module):
    """One inner training run: its ``task``, current ``params`` and ``opt_state``, and the
    ``grad_scale`` the optimizer's gradients are multiplied by (1 unless augmented)."""

    task: Task
    params: Params
    opt_state: OptState
    grad_scale: Float[Array, ""]


class LearnedOptimizerSystem(vograd.UnrolledSystem):
    """Returns, per step, the inner loss after applying the learned update (see `step`).

    ``theta`` is the learned optimizer's weights. An episode samples a task from
    ``family``, initialises its parameters and the optimizer state, and lasts
    ``horizon`` inner steps (Metz et al. 2019: 10,000).

    Step ``t`` with key ``k``: ``k_train, k_valid = split(k)``; a train batch
    ``B_t`` from ``k_train``; ``(l_t, g_t) = value_and_grad(loss)(w_t, B_t)``;
    ``(u_t, s_{t+1}) = optimizer.update(theta, g_t, s_t, w_t)``;
    ``w_{t+1} = w_t + u_t``. The step loss is

    - ``outer="train"``: ``l_t``, the train loss of ``w_t`` on ``B_t`` (no extra
      forward pass);
    - ``outer="valid"``: ``loss(w_{t+1}, V_t)`` on a batch ``V_t`` of the task's
      ``"valid"`` split drawn from ``k_valid`` (one extra forward pass; measured
      after the update so that every step's update counts in its own window).

    Equal keys give equal batches, so antithetic branches see the same data.
    A diverging inner run gives a non-finite loss, left as it is so that
    estimators can count and drop the sample. ``loss_clip`` (off by default)
    replaces finite losses above it by ``loss_clip``; NaN stays NaN.

    ``grad_scale_range=(low, high)`` (off by default) is loss-scale
    augmentation: each episode draws ``c`` log-uniform in ``[low, high]`` and
    the optimizer sees the gradients of ``c * loss`` (``c * g_t``); the step
    loss stays the unscaled one, so episodes of every scale weigh the same in
    the outer objective.
    """

    optimizer: LearnedOptimizer
    family: TaskFamily
    outer: str = eqx.field(static=True)
    horizon: int = eqx.field(static=True)
    loss_clip: float | None = eqx.field(static=True)
    grad_scale_range: tuple[float, float] | None = eqx.field(static=True)

    def __init__(
        self,
        optimizer: LearnedOptimizer,
        family: TaskFamily,
        outer: str = "train",
        horizon: int = 10_000,
        loss_clip: float | None = None,
        grad_scale_range: tuple[float, float] | None = None,
    ):
        self.optimizer = optimizer
        self.family = family
        self.outer = outer
        self.horizon = int(horizon)
        self.loss_clip = None if loss_clip is None else float(loss_clip)
        if grad_scale_range is not None:
            low, high = (float(x) for x in grad_scale_range)
            if not 0 < low <= high < float("inf"):
                raise ValueError(
                    f"LearnedOptimizerSystem: grad_scale_range must be 0 < low <= high, got "
                    f"{grad_scale_range}"
                )
            grad_scale_range = (low, high)
        self.grad_scale_range = grad_scale_range

    def __check_init__(self):
        if self.outer not in OUTER_OBJECTIVES:
            raise ValueError(
                f"LearnedOptimizerSystem: outer must be one of {OUTER_OBJECTIVES}, got {self.outer!r}"
            )
        if self.horizon < 1:
            raise ValueError(f"LearnedOptimizerSystem: horizon must be >= 1, got {self.horizon}")
        if not isinstance(self.optimizer, LearnedOptimizer):
            raise TypeError(
                "LearnedOptimizerSystem: optimizer must be a LearnedOptimizer, got "
                f"{type(self.optimizer).__name__}"
            )
        if not isinstance(self.family, TaskFamily):
            raise TypeError(
                "LearnedOptimizerSystem: family must be a TaskFamily, got "
                f"{type(self.family).__name__}"
            )

    def init_theta(self, key: PRNGKeyArray) -> Theta:
        """Returns the optimizer's initial weights, ``optimizer.init_theta(key)``."""
        return self.optimizer.init_theta(key)

    def init(self, theta: Theta, key: PRNGKeyArray) -> InnerState:
        """Returns a fresh inner run: a sampled task, initial params and optimizer state."""
        k_task, k_params, k_scale = jax.random.split(key, 3)
        task = self.family.sample(k_task)
        params = self.family.init_params(task, k_params)
        scale = jnp.ones(())
        if self.grad_scale_range is not None:
            low, high = jnp.log(jnp.asarray(self.grad_scale_range))
            scale = jnp.exp(jax.random.uniform(k_scale, (), minval=low, maxval=high))
        return InnerState(task=task, params=params, opt_state=self.optimizer.init(theta, params),
                          grad_scale=scale)

    def step(
        self, theta: Theta, state: InnerState, key: PRNGKeyArray
    ) -> tuple[InnerState, Float[Array, ""]]:
        """Returns the state after one learned update and the step's outer loss."""
        k_train, k_valid = jax.random.split(key)
        batch = self.family.batch(state.task, k_train, "train")
        loss, grads = jax.value_and_grad(self.family.loss)(state.params, state.task, batch)
        if self.grad_scale_range is not None:
            grads = jax.tree.map(lambda g: g * state.grad_scale.astype(g.dtype), grads)
        updates, opt_state = self.optimizer.update(theta, grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if self.outer == "valid":
            valid = self.family.batch(state.task, k_valid, "valid")
            loss = self.family.loss(params, state.task, valid)
        if self.loss_clip is not None:
            loss = jnp.where(jnp.isfinite(loss), jnp.minimum(loss, self.loss_clip), loss)
        return InnerState(task=state.task, params=params, opt_state=opt_state,
                          grad_scale=state.grad_scale), loss


__all__ = ["InnerState", "LearnedOptimizerSystem", "OUTER_OBJECTIVES"]
