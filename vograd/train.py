"""The outer training loop: estimate, update, log, checkpoint, resume."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from vograd import checkpoint as ckpt
from vograd import metrics
from vograd.estimators.base import Estimator, EstimatorState
from vograd.estimators.config import window_length
from vograd.estimators.sampled import SampledEstimator
from vograd.guards import check_system
from vograd.interrupt import StopOnSignal
from vograd.lock import one_writer
from vograd.outer import all_finite, global_norm
from vograd.progress import progress_bar
from vograd.schedules import Schedule, bucket
from vograd.system import Theta, UnrolledSystem


class TrainResult(NamedTuple):
    """What `train` returns.

    - ``theta``, ``opt_state``, ``estimator_state``: after the last step;
    - ``history``: the metric dicts of the steps run by this call (the JSON
      log holds all steps, including those before a resume);
    - ``step``: outer steps completed in total; ``num_skipped``: of those, how
      many updates were skipped; ``resumed_from``: the step of the checkpoint
      this call started from, or None for a fresh start.
    """

    theta: Theta
    opt_state: Any
    estimator_state: Any
    history: list[dict]
    step: int
    num_skipped: int
    resumed_from: int | None


def _select(skip, old, new):
    return jax.tree.map(
        lambda a, b: jnp.where(skip, a, b) if eqx.is_array(a) else b, old, new
    )


@eqx.filter_jit
def _outer_step(system, estimator, optimizer, theta, opt_state, est_state, key, length):
    """Returns ``(theta, opt_state, est_state, diagnostics, flags)`` after one update.

    The update is skipped (theta and optimizer state unchanged) when every
    sample was dropped or the gradient or the update is non-finite. The
    estimator state always advances: its particles did run the window.
    """
    if length is None:
        grad, new_est_state, diag = estimator.estimate(system, theta, est_state, key)
    else:
        grad, new_est_state, diag = estimator.estimate(
            system, theta, est_state, key, length=length
        )
    updates, new_opt_state = optimizer.update(grad, opt_state, theta)
    flags = {
        "all_dropped": jnp.asarray(diag.all_dropped),
        "grad_finite": all_finite(grad),
        "update_finite": all_finite(updates),
        "grad_norm": global_norm(grad),
        "update_norm": global_norm(updates),
    }
    skip = flags["all_dropped"] | ~flags["grad_finite"] | ~flags["update_finite"]
    flags["skipped"] = skip
    new_theta = eqx.apply_updates(theta, updates)
    theta = _select(skip, theta, new_theta)
    opt_state = _select(skip, opt_state, new_opt_state)
    return theta, opt_state, new_est_state, diag, flags


def check_theta(theta: Theta, expected: Any) -> None:
    """Raises a ValueError naming the first mismatches between ``theta`` and the
    structure, shapes and dtypes ``expected`` (e.g. ``jax.eval_shape(system.init_theta, key)``)."""
    got_def, want_def = jax.tree.structure(theta), jax.tree.structure(expected)
    if got_def != want_def:
        raise ValueError(
            f"theta does not match the system's outer parameters: got structure {got_def}, "
            f"expected {want_def}"
        )
    bad = [
        f"{jax.tree_util.keystr(path)}: got {jnp.shape(a)} {jnp.result_type(a)}, "
        f"expected {b.shape} {b.dtype}"
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(theta), jax.tree.leaves(expected))
        if jnp.shape(a) != b.shape or jnp.result_type(a) != b.dtype
    ]
    if bad:
        raise ValueError("theta does not match the system's outer parameters: " + "; ".join(bad[:4]))


def _strong(tree: Any) -> Any:
    """Returns ``tree`` with weakly typed arrays made strong.

    ``jnp.asarray(-2.0)`` is weakly typed, its updated value is not: without
    this, the second outer step would compile the step function again.
    """
    return jax.tree.map(
        lambda x: jax.lax.convert_element_type(x, x.dtype)
        if isinstance(x, jax.Array) and x.weak_type
        else x,
        tree,
    )


def _typed_key(key) -> PRNGKeyArray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got shape {key.shape}")
        return key
    return jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def _with_window(estimator: Estimator, window: int) -> Estimator:
    """Returns a copy of ``estimator`` whose static ``window`` is ``window``."""
    try:
        return dataclasses.replace(estimator, window=window)
    except TypeError:  # a custom __init__ that does not take every field
        new = copy.copy(estimator)
        object.__setattr__(new, "window", window)
        return new


def steps_left(system: UnrolledSystem, estimator_state: Any) -> int | None:
    """Returns ``min over particles of (horizon - t)``, or None without particles.

    ``estimator_state`` must be an `EstimatorState` to have particles (see
    `EstimatorState.steps_left`: a particle with ``t >= horizon`` starts a
    fresh episode on its next step, so it has a whole ``horizon`` left).
    """
    if isinstance(estimator_state, EstimatorState):
        return estimator_state.steps_left(int(system.horizon))
    return None


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _check_args(system, estimator, optimizer, num_steps, schedule, checkpoint_every):
    if not isinstance(system, UnrolledSystem):
        raise TypeError(f"system must be a vograd.UnrolledSystem, got {type(system).__name__}")
    if not isinstance(estimator, Estimator):
        raise TypeError(f"estimator must be a vograd.Estimator, got {type(estimator).__name__}")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    for name, value, low in (("num_steps", num_steps, 0), ("checkpoint_every", checkpoint_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a vograd Schedule, got {type(schedule).__name__}")
        if estimator.window is None:
            raise ValueError(
                f"a truncation schedule needs a truncated estimator (with a `window`); "
                f"{type(estimator).__name__} has none"
            )


def train(
    system: UnrolledSystem,
    estimator: Estimator,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    key: PRNGKeyArray,
    *,
    schedule: Schedule | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    keep_checkpoints: int | None = 2,
    log: metrics.LogSpec = None,
    theta: Theta | None = None,
    clip_to_episode: bool = True,
    min_bucket: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Returns the state after ``num_steps`` outer updates of ``theta``.

    Each step ``s`` draws ``k_s = fold_in(k_steps, s)`` from the base ``key``
    (``k_init, k_steps = split(key)``; theta and the estimator state start from
    ``split(k_init)``), picks a window ``w = schedule.window(s, k_sched,
    steps_left)`` when a schedule is given, and runs one jitted function:
    ``g = estimator.estimate(..., length=w)`` with the estimator's static
    window set to ``bucket(w, chunk=estimator.chunk)`` (one compilation per
    bucket, capped at the horizon), then ``optimizer.update`` and
    ``apply_updates``. Windows never exceed ``system.horizon``. A step whose
    samples were all dropped or whose gradient/update is non-finite is
    skipped: theta and the optimizer state stay unchanged, it is counted,
    logged and warned about.

    ``checkpoint_dir``: every ``checkpoint_every`` steps (and after the last)
    an atomic checkpoint holds theta, the optimizer and estimator states, the
    step and the key; the newest ``keep_checkpoints`` are kept. If the
    directory already holds one, training resumes from it and reaches exactly
    (bit for bit) the theta of an uninterrupted run with the same key.

    ``log``: a path (JSON lines, one per step, appended; on resume the lines of
    steps not covered by the checkpoint are dropped first), a callable
    receiving each step's metric dict, a `vograd.metrics.MetricsWriter`
    (e.g. `vograd.metrics.TensorBoard`), or a list of these. ``theta``: initial outer parameters
    (default ``system.init_theta``). ``clip_to_episode``: pass the steps left
    in the episode (`steps_left`: the minimum over the estimator state's
    ``particles``) to the schedule; meaningful when the population's episodes
    are in step, while a staggered population would clip every window to
    about ``horizon / num_particles``, so turn it off there. ``min_bucket``:
    the smallest compiled window (`vograd.schedules.bucket`'s ``minimum``):
    fewer compilations, shorter windows run padded.
    ``progress``: a tqdm bar in a terminal or a notebook (`vograd.progress`).

    Before anything compiles, the system is checked (`vograd.guards.check_system`:
    a real floating scalar loss, finite floating theta, a state of fixed
    structure and dtypes). One process at a time may train into a
    ``checkpoint_dir`` (`vograd.lock`: `DirectoryLockedError` names the other's
    pid). SIGINT or SIGTERM stops after the current outer step with a
    checkpoint and raises `vograd.interrupt.TrainingInterrupted`; a second
    signal exits at once (`vograd.interrupt`).
    """
    _check_args(system, estimator, optimizer, num_steps, schedule, checkpoint_every)
    # One writer per checkpoint directory; SIGINT/SIGTERM stop between steps (vograd.interrupt).
    with one_writer(checkpoint_dir), StopOnSignal() as stop:
        return _train(
            system, estimator, optimizer, num_steps, key, schedule=schedule,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints, log=log, theta=theta,
            clip_to_episode=clip_to_episode, min_bucket=min_bucket, progress=progress, stop=stop,
        )


def _train(system, estimator, optimizer, num_steps, key, *, schedule, checkpoint_dir,
           checkpoint_every, keep_checkpoints, log, theta, clip_to_episode, min_bucket,
           progress, stop: StopOnSignal) -> TrainResult:
    """`train` itself, with the checkpoint directory locked and signals watched."""
    key = _typed_key(key)
    k_init, k_steps = jax.random.split(key)
    k_theta, k_est = jax.random.split(k_init)
    if theta is None:
        theta = system.init_theta(k_theta)
    else:
        check_theta(theta, jax.eval_shape(system.init_theta, k_theta))
    theta = _strong(theta)
    check_system(system, theta, k_est)  # shapes only: before anything compiles
    opt_state = _strong(optimizer.init(theta))
    est_state = _strong(estimator.init(system, theta, k_est))
    step, num_skipped, resumed_from = 0, 0, None

    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        resumed = _resume(checkpoint_dir, _bundle(theta, opt_state, est_state, key, 0, 0))
        if resumed is not None:
            theta, opt_state, est_state, step, num_skipped = resumed
            resumed_from = step
            if step > num_steps:
                warnings.warn(
                    f"the checkpoint in {checkpoint_dir} is at step {step}, past "
                    f"num_steps={num_steps}; returning it unchanged",
                    stacklevel=2,
                )

    sinks = metrics.writers(log)
    for sink in sinks:
        sink.start(step)

    history: list[dict] = []
    estimators: dict[int, Estimator] = {}
    chunk = estimator.chunk
    horizon = int(system.horizon)
    bar = progress_bar(
        enabled=progress,
        total=num_steps,
        initial=min(step, num_steps),
        desc="outer steps",
        unit="step",
    )
    t_start = time.perf_counter()
    try:
        while step < num_steps:
            t0 = time.perf_counter()
            k_sched, k_step = jax.random.split(jax.random.fold_in(k_steps, step))
            clip = schedule is not None and clip_to_episode
            left = steps_left(system, est_state) if clip else None
            if schedule is None:
                window, size, est, length = estimator.window, None, estimator, None
            else:
                # Estimators refuse windows longer than an episode.
                window = min(schedule.window(step, k_sched, left), horizon)
                size = bucket(window, chunk=chunk, maximum=horizon, minimum=min_bucket)
                if size not in estimators:
                    estimators[size] = _with_window(estimator, size)
                est = estimators[size]
                # vograd's own estimators take a host-checked length (no run-time check, so
                # the step is cacheable across processes); any other gets a plain int32.
                length = (window_length(window, size) if isinstance(est, SampledEstimator)
                          else jnp.asarray(window, jnp.int32))
            theta, opt_state, est_state, diag, flags = _outer_step(
                system, est, optimizer, theta, opt_state, est_state, k_step, length
            )
            flags, diag_host = jax.device_get((flags, diag))
            skipped = bool(flags["skipped"])
            reason = _skip_reason(flags) if skipped else None
            if skipped:
                num_skipped += 1
                warnings.warn(
                    f"outer step {step}: update skipped ({reason}); theta unchanged",
                    RuntimeWarning,
                    stacklevel=2,
                )
            record = {
                "step": step,
                **_metrics(diag_host, flags),
                "window": window,
                "bucket": size,
                "steps_left": left,
                "skipped": skipped,
                "skip_reason": reason,
                "num_skipped": num_skipped,
                "step_time": time.perf_counter() - t0,
                "wall_time": time.perf_counter() - t_start,
            }
            history.append(record)
            for sink in sinks:
                sink.write(record)
            step += 1
            if checkpoint_dir is not None and (
                step % checkpoint_every == 0 or step == num_steps or stop.requested
            ):
                ckpt.save_to_directory(
                    checkpoint_dir,
                    _bundle(theta, opt_state, est_state, key, step, num_skipped),
                    step=step,
                    metadata={"num_skipped": num_skipped, "num_steps": num_steps},
                    keep=keep_checkpoints,
                )
            bar.update(1)
            bar.set_postfix(loss=record["loss"], window=window, refresh=False)
            if stop.requested and step < num_steps:
                stop.stop(step, num_steps, checkpoint_dir)  # raises TrainingInterrupted
    finally:
        bar.close()
        for sink in sinks:
            sink.close()
    return TrainResult(theta, opt_state, est_state, history, step, num_skipped, resumed_from)


def _resume(directory: Path, template: dict):
    """Returns ``(theta, opt_state, est_state, step, num_skipped)`` from the
    newest checkpoint in ``directory``, or None when there is none."""
    if directory.is_dir():  # locked by this process: every temporary there is stale
        ckpt.remove_stale_temporaries(directory, every_writer=True)
    latest = ckpt.latest_checkpoint(directory)
    if latest is None:
        return None
    loaded, header = ckpt.load_checkpoint(latest, template)
    if int(loaded["step"]) != header["step"]:
        raise ckpt.CheckpointError(
            f"{latest}: its header records step {header['step']}, its contents {int(loaded['step'])}"
        )
    key_data = jax.random.key_data
    if not np.array_equal(key_data(loaded["key"]), key_data(template["key"])):
        raise ValueError(
            f"{latest} was written by a run with a different key; pass the "
            "same key to resume, or use an empty checkpoint_dir"
        )
    return (
        loaded["theta"],
        loaded["opt_state"],
        loaded["estimator_state"],
        int(loaded["step"]),
        int(loaded["num_skipped"]),
    )


def _skip_reason(flags: dict) -> str:
    if flags["all_dropped"]:
        return "all_dropped"
    return "nonfinite_gradient" if not flags["grad_finite"] else "nonfinite_update"


def _metrics(diag, flags: dict) -> dict:
    """Returns the estimator's JSON-ready metrics (non-finite numbers -> None)."""
    return {
        # No sample kept: the mean loss is undefined, not 0.
        "loss": None if flags["all_dropped"] else _num(diag.loss),
        "variance": {k: _num(v) for k, v in sorted(diag.variance.items())},
        "weight": {k: _num(v) for k, v in sorted(diag.weight.items())},
        "num_dropped": int(diag.num_dropped),
        "num_samples": int(diag.num_samples),
        "grad_norm": _num(flags["grad_norm"]),
        "update_norm": _num(flags["update_norm"]),
    }


def _bundle(theta, opt_state, est_state, key, step: int, num_skipped: int) -> dict:
    """Returns the pytree a checkpoint holds."""
    return {
        "theta": theta,
        "opt_state": opt_state,
        "estimator_state": est_state,
        "key": key,
        "step": np.asarray(step, np.int64),
        "num_skipped": np.asarray(num_skipped, np.int64),
    }
