"""Learned optimizers against tuned baselines on the unseen-task suite (`vograd.recipes.suite`).

Protocol, per task (one sampled task, ``num_seeds`` inner seeds that fix the
initialisation and every batch, shared by all optimizers):

- Adam and SGD+momentum (0.9) over the 11 learning rates ``1e-4 .. 10``; "tuned"
  is the per-task best on the mean training loss over the run;
- "Adam, one global learning rate": the grid point whose losses, divided by the
  per-task best, have the lowest geometric mean over the tasks; and Adam at 1e-3;
- every learned optimizer as it is, untuned.

Per optimizer and task: the mean training loss over the run (the score), the
final train and test losses, the share of hidden ReLU units dead at the end
(no positive activation on a whole test batch; MLPs with ReLU only), the global
L2 norm of the final weights, divergence, and the seconds per step. Win shares
of each learned optimizer against each baseline, and across several learned
optimizers (outer seeds) their spread and a bootstrap confidence interval over
tasks (``scipy.stats.bootstrap``).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vograd.recipes import curve_cache
from vograd.recipes.evaluation import InnerSchedule, grid_runs, log_grid, seconds_per_step
from vograd.recipes.suite import SuiteTask
from vograd.tasks.problems.base import TaskFamily

ADAM_TUNED, ADAM_GLOBAL, ADAM_1E3, SGDM_TUNED = "adam (tuned)", "adam (global lr)", "adam 1e-3", "sgdm (tuned)"
BASELINES = (ADAM_TUNED, ADAM_GLOBAL, ADAM_1E3, SGDM_TUNED)


class ScaledLoss(TaskFamily):
    """``family`` with its loss multiplied by ``scale`` (what the optimizer sees)."""

    family: TaskFamily
    scale: float = eqx.field(static=True)

    def sample(self, key):
        return self.family.sample(key)

    def init_params(self, task, key):
        return self.family.init_params(task, key)

    def batch(self, task, key, split):
        return self.family.batch(task, key, split)

    def loss(self, params, task, batch):
        return self.scale * self.family.loss(params, task, batch)


def dead_share(family: TaskFamily, params, task, key) -> jax.Array:
    """Returns the share of hidden units with no positive activation on one test batch
    (ReLU MLPs with ``linear_i`` layers), else NaN."""
    from vograd.tasks.problems import ImageMLPFamily, TabularMLPFamily

    if not isinstance(family, (ImageMLPFamily, TabularMLPFamily)) or family.activation != "relu" \
            or not family.hidden:
        return jnp.full((), jnp.nan)
    batch = family.batch(task, key, "test")
    x = batch.images.reshape(batch.images.shape[0], -1) if isinstance(family, ImageMLPFamily) else batch.x
    dead, total = 0.0, 0
    for i in range(len(family.hidden)):
        x = jax.nn.relu(x @ params[f"linear_{i}"]["w"] + params[f"linear_{i}"]["b"])
        dead = dead + jnp.sum(jnp.all(x <= 0, axis=0))
        total += x.shape[1]
    return dead / total


def _weight_norm(params) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))


def _runs(family, make, grid, task, keys, schedule):
    """Returns numpy ``train, test [G, S, E]``, ``dead, norm [G, S]`` for one task."""
    tasks = jax.tree.map(lambda x: x[None], task)
    train, test, params = grid_runs(family, make, grid, tasks, keys[None], schedule)
    base = family.family if isinstance(family, ScaledLoss) else family
    diag = jax.jit(jax.vmap(jax.vmap(lambda p, k: (dead_share(base, p, task, k), _weight_norm(p)))))
    p0 = jax.tree.map(lambda x: x[:, 0], params)
    dead, norm = diag(p0, jnp.broadcast_to(keys, (train.shape[0],) + keys.shape))
    return [np.asarray(a, np.float64) for a in (train[:, 0], test[:, 0], dead, norm)]


def _mean_or_nan(x) -> float:
    """Returns the mean of the finite entries of ``x``, NaN (silently) when there are none:
    dead-unit shares are NaN for tasks without ReLU units."""
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    return float(np.mean(x[finite])) if finite.any() else float("nan")


def _score(train: np.ndarray) -> np.ndarray:
    """Returns the mean training loss over seeds and evaluations ``[...]`` (+inf if diverged)."""
    ok = np.all(np.isfinite(train), axis=(-2, -1))
    return np.where(ok, np.mean(np.where(np.isfinite(train), train, 0.0), axis=(-2, -1)), np.inf)


_RUN_ARRAYS = ("train", "test", "dead", "norm")


def _cached_runs(cache_dir, name, family, make, grid, task, keys, schedule):
    """Returns `_runs`, from ``cache_dir`` when it holds this exact computation (`curve_cache`)."""
    digest = None if cache_dir is None else curve_cache.key(
        "suite:" + name, family, grid, task, keys, schedule, schedule.num_steps)
    arrays, _ = curve_cache.cached(cache_dir, digest, _RUN_ARRAYS, lambda: dict(
        zip(_RUN_ARRAYS, _runs(family, make, grid, task, keys, schedule))))
    return [arrays[n] for n in _RUN_ARRAYS]


def run_suite(learned: dict[str, optax.GradientTransformation], tasks: tuple[SuiteTask, ...], *,
              num_seeds: int = 3, seed: int = 0, progress: bool = True, cache_dir=None,
              fingerprints: dict[str, str] | None = None) -> dict:
    """Returns every optimizer's curves and statistics on ``tasks`` (see the module docstring).

    ``cache_dir``: keep the curves of every run there (`vograd.recipes.curve_cache`), so a
    later suite with other learned optimizers reruns only what is new; a learned
    optimizer's curves are cached only when ``fingerprints`` gives it one (e.g.
    `curve_cache.file_digest` of its weights). Seconds per step are always re-measured
    in this run, never cached.

    The result maps ``task name -> {"steps", "unseen", "lrs", "optimizers": {name: {"train",
    "test" [S, E], "dead", "norm" [S], "seconds_per_step", "lr"}}}``, plus ``"global_lr"``.
    """
    lrs = log_grid(1e-4, 10.0, 11)
    grid = {"learning_rate": lrs}
    makes = {"adam": lambda h: optax.adam(h["learning_rate"]),
             "sgdm": lambda h: optax.sgd(h["learning_rate"], momentum=0.9)}
    raw = {}
    for i, st in enumerate(tasks):  # keys from the task's name: the same draws in any selection
        if progress:
            print(f"[suite] {st.name} ({i + 1}/{len(tasks)}): {st.unseen}", flush=True)
        family = st.build()
        if st.loss_scale != 1.0:
            family = ScaledLoss(family, st.loss_scale)
        key = jax.random.fold_in(jax.random.key(seed), zlib.crc32((st.draw or st.name).encode()))
        task = family.sample(jax.random.fold_in(key, 0))
        keys = jax.random.split(jax.random.fold_in(key, 1), num_seeds)
        schedule = InnerSchedule(st.num_steps, st.eval_every, eval_batches=4, sequential=st.sequential)
        entry = {"steps": schedule.steps().tolist(), "unseen": st.unseen, "grids": {}, "learned": {}}
        for name, make in makes.items():
            entry["grids"][name] = _cached_runs(cache_dir, name, family, make, grid, task, keys,
                                                schedule)
        for name, opt in learned.items():
            where = cache_dir if (fingerprints or {}).get(name) else None
            label = f"learned:{(fingerprints or {}).get(name)}"
            entry["learned"][name] = [a[0] for a in _cached_runs(
                where, label, family, lambda _, o=opt: o, jnp.zeros((1,)), task, keys, schedule)]
        # Wall-clock: one run of each at its (tuned) point, timed after compiling.
        per_step = {}
        for name, make in makes.items():
            best = int(np.argmin(_score(entry["grids"][name][0])))
            per_step[name] = seconds_per_step(family, make, {"learning_rate": lrs[best]}, task,
                                              keys[0], num_steps=min(st.num_steps, 200),
                                              eval_every=min(st.num_steps, 200))
        for name, opt in learned.items():
            per_step[name] = seconds_per_step(family, lambda _, o=opt: o, None, task, keys[0],
                                              num_steps=min(st.num_steps, 200),
                                              eval_every=min(st.num_steps, 200))
        entry["seconds_per_step"] = per_step
        if st.loss_scale != 1.0:  # report the loss itself, not the scaled one
            for runs in (*entry["grids"].values(), *entry["learned"].values()):
                runs[0] /= st.loss_scale
                runs[1] /= st.loss_scale
        raw[st.name] = entry
    return _summarise(raw, np.asarray(lrs))


def _summarise(raw: dict, lrs: np.ndarray) -> dict:
    """Returns the per-task records with the baselines selected (see `run_suite`)."""
    names = list(raw)
    adam_scores = np.stack([_score(raw[n]["grids"]["adam"][0]) for n in names], axis=1)  # [G, T]
    ratio = adam_scores / np.min(adam_scores, axis=0, keepdims=True)
    with np.errstate(invalid="ignore"):
        global_index = int(np.argmin(np.mean(np.log(np.where(np.isfinite(ratio), ratio, 1e30)), axis=1)))
    index_1e3 = int(np.argmin(np.abs(np.log(lrs / 1e-3))))
    out = {"global_lr": float(lrs[global_index]), "tasks": {}}
    for t, name in enumerate(names):
        entry = raw[name]
        optimizers = {}

        def pick(grid_name, g, label, entry=entry):
            train, test, dead, norm = (a[g] for a in entry["grids"][grid_name])
            optimizers[label] = {"train": train, "test": test, "dead": dead, "norm": norm,
                                 "lr": float(lrs[g]),
                                 "seconds_per_step": entry["seconds_per_step"][grid_name]}

        pick("adam", int(np.argmin(adam_scores[:, t])), ADAM_TUNED)
        pick("adam", global_index, ADAM_GLOBAL)
        pick("adam", index_1e3, ADAM_1E3)
        pick("sgdm", int(np.argmin(_score(entry["grids"]["sgdm"][0]))), SGDM_TUNED)
        for lname, (train, test, dead, norm) in entry["learned"].items():
            optimizers[lname] = {"train": train, "test": test, "dead": dead, "norm": norm,
                                 "lr": None, "seconds_per_step": entry["seconds_per_step"][lname]}
        out["tasks"][name] = {"steps": entry["steps"], "unseen": entry["unseen"],
                              "optimizers": optimizers}
    return out


def statistics(result: dict, learned: list[str], *, pooled: list[str] | None = None,
               confidence: float = 0.95) -> dict:
    """Returns win shares, ratios to tuned Adam, collapse and divergence flags.

    ``wins[l][b]``: share of tasks where learned optimizer ``l`` has the lower mean train
    loss than baseline ``b``; ``pooled[b]``: the mean over the ``pooled`` optimizers (the
    outer seeds of one recipe; default all of ``learned``; ``[]``: none) with a percentile bootstrap
    interval over tasks, and the spread (max - min) across them.
    """
    pooled = list(learned if pooled is None else pooled)
    from scipy import stats as sps

    tasks = list(result["tasks"])
    score = {n: np.array([_score(result["tasks"][t]["optimizers"][n]["train"][None])[0] for t in tasks])
             for n in (*BASELINES, *learned)}
    out = {"tasks": tasks, "wins": {}, "pooled": {}, "ratio_to_tuned_adam": {}, "collapses": {}}
    for name in learned:
        out["wins"][name] = {b: float(np.mean(score[name] < score[b])) for b in BASELINES}
        out["ratio_to_tuned_adam"][name] = (score[name] / score[ADAM_TUNED]).tolist()
        flags = []
        for t in tasks:
            opt = result["tasks"][t]["optimizers"]
            dead, adam_dead = _mean_or_nan(opt[name]["dead"]), _mean_or_nan(opt[ADAM_TUNED]["dead"])
            diverged = not np.all(np.isfinite(opt[name]["train"]))
            flags.append(bool(diverged or (dead > 0.5 and adam_dead < 0.25)))
        out["collapses"][name] = flags
    for b in BASELINES if pooled else ():  # pooled=[]: no pooled statistics
        per_task = np.mean([score[name] < score[b] for name in pooled], axis=0)  # [T]
        shares = [out["wins"][name][b] for name in pooled]
        if len(set(per_task.tolist())) > 1:
            ci = sps.bootstrap((per_task,), np.mean, confidence_level=confidence,
                               method="percentile", random_state=0).confidence_interval
            interval = [float(ci.low), float(ci.high)]
        else:
            interval = [float(per_task[0])] * 2
        out["pooled"][b] = {"mean": float(np.mean(per_task)), "ci": interval,
                            "spread": float(max(shares) - min(shares)), "over": pooled}
    return out


def to_json(result: dict, stats: dict, path: str | os.PathLike) -> Path:
    """Returns ``path`` after writing the results and statistics as JSON (arrays as lists)."""
    def plain(x):
        if isinstance(x, np.ndarray):
            return [None if not math.isfinite(v) else v for v in x.astype(float).ravel().tolist()] \
                if x.ndim <= 1 else [plain(r) for r in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    path = Path(path)
    path.write_text(json.dumps({"result": plain(result), "statistics": plain(stats)}, indent=1))
    return path


def from_json(path: str | os.PathLike) -> dict:
    """Returns a `run_suite` result read back from `to_json`'s file (arrays as numpy)."""
    result = json.loads(Path(path).read_text())["result"]
    for entry in result["tasks"].values():
        for opt in entry["optimizers"].values():
            for k in ("train", "test", "dead", "norm"):
                opt[k] = np.array([[np.nan if v is None else v for v in row] for row in opt[k]]
                                  if opt[k] and isinstance(opt[k][0], list)
                                  else [np.nan if v is None else v for v in opt[k]], np.float64)
    return result


__all__ = ["BASELINES", "from_json", "ScaledLoss", "dead_share", "run_suite", "statistics", "to_json"]
