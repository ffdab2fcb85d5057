"""Inner training curves on held-out tasks, and per-task tuning of baselines.

Everything here is generic over a `TaskFamily` and over optimizers given as
``make(hparams) -> optax.GradientTransformation`` factories, so one function
runs a learned optimizer (``lambda _: lopt.as_optax(theta)``) and a grid of
Adam learning rates (``lambda h: optax.adam(h["learning_rate"])``) alike: the
grid is a pytree of arrays with a leading ``[G]`` axis, vmapped in one jit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

Hparams = Any  # pytree of arrays; a grid has a leading [G] axis on every leaf
MakeOptimizer = Callable[[Hparams], optax.GradientTransformation]


@dataclass(frozen=True)
class InnerSchedule:
    """How long held-out tasks are trained and how often they are evaluated.

    ``num_steps`` must be a multiple of ``eval_every``; each evaluation
    averages the loss over ``eval_batches`` batches of the "test" split.
    ``unroll`` is passed to the ``lax.scan`` over the steps of one block.

    ``sequential``: `grid_curves` runs its grid points, tasks and seeds one
    after another (``lax.map``) instead of vectorized (``vmap``). Use it for
    convolutional problems: vmapping a convolution over runs with their own
    kernels gives XLA a grouped convolution that its CPU backend runs about
    2x slower than the separate ones (measured on the 6-layer CNN: 731 vs
    386 ms per run-step), and the ``[G*T*S]``-wide program is far slower to
    compile. (An earlier version unrolled the blocks of conv problems instead;
    30-step blocks of the 6-layer CNN then compiled for more than 25 minutes.)
    """

    num_steps: int
    eval_every: int
    eval_batches: int = 1
    unroll: int | bool = 1
    sequential: bool = False

    def __post_init__(self):
        if self.num_steps < 1 or self.eval_every < 1:
            raise ValueError(f"num_steps and eval_every must be >= 1, got {self}")
        if self.num_steps % self.eval_every:
            raise ValueError(
                f"num_steps ({self.num_steps}) must be a multiple of "
                f"eval_every ({self.eval_every})"
            )

    @property
    def num_evals(self) -> int:
        return self.num_steps // self.eval_every

    def steps(self) -> np.ndarray:
        """Returns the inner step at the end of each evaluation block, ``[num_evals]``."""
        return self.eval_every * np.arange(1, self.num_evals + 1)


def inner_curves(
    family,
    make: MakeOptimizer,
    hparams: Hparams,
    task,
    key: PRNGKeyArray,
    schedule: InnerSchedule,
) -> tuple[Float[Array, " E"], Float[Array, " E"]]:
    """Returns ``(train, test)`` loss curves of one inner training run, ``[E]`` each
    (`inner_run` without the final parameters)."""
    train, test, _ = inner_run(family, make, hparams, task, key, schedule)
    return train, test


def inner_run(
    family,
    make: MakeOptimizer,
    hparams: Hparams,
    task,
    key: PRNGKeyArray,
    schedule: InnerSchedule,
):
    """Returns ``(train, test, params)``: the loss curves ``[E]`` of one inner training run
    and its final parameters.

    ``train[e]`` is the mean minibatch training loss over evaluation block
    ``e`` (``eval_every`` steps), ``test[e]`` the mean loss on
    ``eval_batches`` test batches after the block. The key fixes the inner
    initialisation and every batch, so optimizers compared with the same key
    see the same data (common random numbers).
    """
    optimizer = make(hparams)
    k_init, k_train, k_test = jax.random.split(key, 3)
    params = family.init_params(task, k_init)
    opt_state = optimizer.init(params)
    loss_and_grad = jax.value_and_grad(family.loss)

    def train_step(carry, i):
        params, opt_state = carry
        batch = family.batch(task, jax.random.fold_in(k_train, i), "train")
        loss, grads = loss_and_grad(params, task, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def test_loss(params, e):
        keys = jax.random.split(jax.random.fold_in(k_test, e), schedule.eval_batches)
        losses = jax.vmap(lambda k: family.loss(params, task, family.batch(task, k, "test")))(keys)
        return jnp.mean(losses)

    def block(carry, e):
        idx = e * schedule.eval_every + jnp.arange(schedule.eval_every)
        carry, losses = jax.lax.scan(train_step, carry, idx, unroll=schedule.unroll)
        return carry, (jnp.mean(losses), test_loss(carry[0], e))

    (params, _), (train, test) = jax.lax.scan(
        block, (params, opt_state), jnp.arange(schedule.num_evals)
    )
    return train, test, params


@eqx.filter_jit
def grid_curves(family, make, grid, tasks, keys, schedule):
    """Returns train and test curves for every grid point, task and seed: ``[G, T, S, E]``.

    ``tasks`` has a leading ``[T]`` axis and ``keys`` is ``[T, S]`` (one key per
    task and seed, shared by every grid point). ``schedule.sequential`` picks
    ``lax.map`` over ``vmap`` for the three axes (same numbers).
    """
    return _over_grid(inner_curves, schedule.sequential)(family, make, grid, tasks, keys, schedule)


@eqx.filter_jit
def grid_runs(family, make, grid, tasks, keys, schedule):
    """Returns `grid_curves`' train and test curves ``[G, T, S, E]`` and the final
    parameters of every run (leaves ``[G, T, S, ...]``)."""
    return _over_grid(inner_run, schedule.sequential)(family, make, grid, tasks, keys, schedule)


def _over_grid(run: Callable, sequential: bool) -> Callable:
    """Returns ``run`` mapped over seeds, tasks and grid points (``lax.map`` if ``sequential``)."""
    over = _mapped if sequential else jax.vmap
    per_seed = over(run, in_axes=(None, None, None, None, 0, None))
    per_task = over(per_seed, in_axes=(None, None, None, 0, 0, None))
    return over(per_task, in_axes=(None, None, 0, None, None, None))


def _mapped(fn: Callable, in_axes: tuple[int | None, ...]) -> Callable:
    """Returns ``fn`` mapped over axis 0 of the arguments whose ``in_axes`` is 0, like
    ``jax.vmap(fn, in_axes)``, but one element after another with ``lax.map``."""
    if any(a not in (0, None) for a in in_axes):
        raise ValueError(f"_mapped supports in_axes of 0 or None, got {in_axes}")

    def mapped(*args):
        slots = [i for i, a in enumerate(in_axes) if a == 0]

        def one(xs):
            full = list(args)
            for i, x in zip(slots, xs):
                full[i] = x
            return fn(*full)

        return jax.lax.map(one, tuple(args[i] for i in slots))

    return mapped


def selection_score(curves: np.ndarray) -> np.ndarray:
    """Returns the tuning score of curves ``[..., S, E]``: mean over seeds and evaluations.

    A run that diverged (any non-finite value) scores +inf, so it is never
    selected, rather than turning the mean into NaN.
    """
    curves = np.asarray(curves, dtype=np.float64)
    finite = np.all(np.isfinite(curves), axis=(-2, -1))
    score = np.mean(np.where(np.isfinite(curves), curves, 0.0), axis=(-2, -1))
    return np.where(finite, score, np.inf)


@dataclass(frozen=True)
class Tuned:
    """The per-task best of a hyperparameter search.

    ``train`` and ``test`` are ``[T, S, E]`` curves of the selected point for
    each task; ``best`` the selected grid index per task ``[T]``; ``scores``
    the selection score of every point ``[G, T]``.
    """

    train: np.ndarray
    test: np.ndarray
    best: np.ndarray
    scores: np.ndarray


def select(train: np.ndarray, test: np.ndarray, select_on: str = "train") -> Tuned:
    """Returns, per task, the grid point with the lowest mean ``select_on`` loss.

    ``train`` and ``test`` are ``[G, T, S, E]`` curves of a whole grid.
    ``select_on`` is ``"train"`` (average training loss, as in Metz et al.
    2019's train-loss comparisons) or ``"test"`` (their test-loss ones).
    """
    if select_on not in ("train", "test"):
        raise ValueError(f"select_on must be 'train' or 'test', got {select_on!r}")
    train, test = np.asarray(train), np.asarray(test)
    scores = selection_score(train if select_on == "train" else test)  # [G, T]
    best = np.argmin(scores, axis=0)
    cols = np.arange(train.shape[1])
    return Tuned(train[best, cols], test[best, cols], best, scores)


def tune(
    family,
    make: MakeOptimizer,
    grid: Hparams,
    tasks,
    keys,
    schedule: InnerSchedule,
    *,
    select_on: str = "train",
) -> Tuned:
    """Returns, per task, the curves of the grid point with the lowest mean loss (see `select`)."""
    train, test = grid_curves(family, make, grid, tasks, keys, schedule)
    return select(train, test, select_on)


def log_grid(low: float = 1e-4, high: float = 10.0, num: int = 11) -> Float[Array, " G"]:
    """Returns ``num`` log-spaced values from ``low`` to ``high`` (the paper's 11 from 1e-4 to 10)."""
    if not 0 < low < high or num < 2:
        raise ValueError(f"need 0 < low < high and num >= 2, got {(low, high, num)}")
    return jnp.logspace(np.log10(low), np.log10(high), num)


def seconds_per_step(
    family, make: MakeOptimizer, hparams: Hparams, task, key: PRNGKeyArray,
    num_steps: int = 100, repeats: int = 3, unroll: int | bool = 1, eval_every: int | None = None,
) -> float:
    """Returns the wall-clock seconds of one inner training step (median of ``repeats``).

    Times a jitted run of ``num_steps`` steps with one evaluation at the end,
    after compiling, so the figure is what a user of the optimizer pays.
    """
    schedule = InnerSchedule(num_steps, eval_every or num_steps, unroll=unroll)
    run = eqx.filter_jit(inner_curves)
    jax.block_until_ready(run(family, make, hparams, task, key, schedule))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(family, make, hparams, task, key, schedule))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / num_steps
