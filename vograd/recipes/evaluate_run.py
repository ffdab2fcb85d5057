"""The held-out evaluation of a trained run (Metz 2019, Section 4.4 and Figure 6-7).

For each held-out task (test class pool, never seen in outer training) and
seed, the learned optimizer trains the inner problem with no tuning; Adam,
RMSProp and SGD+momentum are tuned per task over a log-spaced learning-rate
grid, and Adam+Reg+Decay by random search over its 8 hyperparameters. Train
curves are compared with baselines selected on training loss, test curves with
baselines selected on test loss. Wall-clock curves use the per-step time of
each optimizer measured in the same run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vograd.progress import progress_bar
from vograd.recipes import curve_cache, report, run
from vograd.recipes.config import Evaluation, Problem
from vograd.recipes.evaluation import InnerSchedule, grid_curves, log_grid, seconds_per_step, select

LEARNED = "learned"
log = logging.getLogger(__name__)


def baseline_factories(num_steps: int):
    """Returns ``{name: (make, grid_fn)}`` for the tuned baselines.

    ``make(hparams)`` builds the optax transformation; ``grid_fn(ev, key)``
    returns the hyperparameter grid (leading axis = grid points).
    """
    from vograd.tasks.optimizers import baselines

    def lr_grid(ev: Evaluation, key):
        return {"learning_rate": log_grid(ev.lr_low, ev.lr_high, ev.lr_grid)}

    def random_search(ev: Evaluation, key):
        return jax.vmap(baselines.sample_adam_reg_decay)(jax.random.split(key, ev.random_search))

    return {
        "adam": (lambda h: baselines.adam(h["learning_rate"]), lr_grid),
        "rmsprop": (lambda h: baselines.rmsprop(h["learning_rate"]), lr_grid),
        "sgd_momentum": (lambda h: baselines.sgd_momentum(h["learning_rate"]), lr_grid),
        "adam_reg_decay": (
            lambda h: baselines.adam_reg_decay(**h, num_steps=num_steps),
            random_search,
        ),
    }


def evaluate_family(family, lopt, theta, ev: Evaluation, num_steps: int, key, out_dir,
                    title: str, progress: bool = True, unroll: int | bool = 1,
                    sequential: bool = False, cache_dir: str | os.PathLike | None = None,
                    others: dict | None = None) -> str:
    """Returns the markdown results table of ``lopt`` vs tuned baselines on ``family``.

    Writes report.md, results.json and PNG plots into ``out_dir``. ``cache_dir``:
    read and store the baselines' curves there (`vograd.recipes.curve_cache`); the
    learned optimizer always runs, and every optimizer's seconds per step are
    measured in this call. ``others``: more untuned optimizers ``{name: optax
    transformation}`` (e.g. shipped ones), run beside ``lopt`` on the same tasks.
    """
    k_tasks, k_seeds, k_search = jax.random.split(key, 3)
    tasks = jax.vmap(family.sample)(jax.random.split(k_tasks, ev.num_tasks))
    keys = jax.random.split(k_seeds, ev.num_tasks * ev.num_seeds).reshape(ev.num_tasks, ev.num_seeds)
    schedule = InnerSchedule(num_steps, ev.eval_every, ev.eval_batches, unroll, sequential)
    task0 = jax.tree.map(lambda x: x[0], tasks)

    def learned(_):
        return lopt.as_optax(theta)

    runs = {LEARNED: (learned, lambda ev, key: jnp.zeros((1,)))}
    for name, opt in (others or {}).items():
        runs[name] = (lambda _, opt=opt: opt, lambda ev, key: jnp.zeros((1,)))
    factories = baseline_factories(num_steps)
    names = list(ev.baselines) + (["adam_reg_decay"] if ev.random_search else [])
    for name in names:
        if name not in factories:
            raise KeyError(f"unknown baseline {name!r}; known: {sorted(factories)}")
        runs[name] = factories[name]

    curves, seconds, chosen = {}, {}, {}
    bar = progress_bar(enabled=progress, total=len(runs), desc=f"eval {title}", unit="optimizer")
    for i, (name, (make, grid_fn)) in enumerate(runs.items()):
        bar.set_postfix_str(name)
        grid = grid_fn(ev, jax.random.fold_in(k_search, i))
        where = cache_dir if name in factories else None  # the learned optimizer: never cached
        digest = None if where is None else curve_cache.key(
            name, family, grid, tasks, keys, schedule, num_steps)
        arrays, hit = curve_cache.cached(where, digest, ("train", "test"), lambda: dict(
            zip(("train", "test"), grid_curves(family, make, grid, tasks, keys, schedule))))
        train, test = arrays["train"], arrays["test"]
        if hit:
            log.info("%s: %s: curves from the cache %s", title, name, cache_dir)
        by_train, by_test = select(train, test, "train"), select(train, test, "test")
        curves[name] = (by_train.train, by_test.test)
        point = jax.tree.map(lambda x: x[int(by_train.best[0])], grid)
        seconds[name] = seconds_per_step(family, make, point, task0, keys[0, 0],
                                         num_steps=min(num_steps, ev.eval_every * 5), unroll=unroll,
                                         eval_every=ev.eval_every)
        if name in factories:
            chosen[name] = {
                "per_task_best_on_train": jax.tree.map(lambda x: np.asarray(x)[by_train.best].tolist(), grid),
            }
        bar.update(1)
    bar.close()
    notes = (
        f"{ev.num_tasks} held-out tasks x {ev.num_seeds} seeds, {num_steps} inner steps. "
        "Baselines tuned per task (learning rate over "
        f"{ev.lr_grid} log-spaced values in [{ev.lr_low}, {ev.lr_high}]; Adam+Reg+Decay by "
        f"{ev.random_search} random draws); train columns use the baseline selected on train "
        "loss, test columns the one selected on test loss. The learned optimizer is not tuned. "
        "'wins' = share of tasks on which the learned optimizer's loss averaged over the run "
        "is lower."
    )
    md = report.write_report(str(out_dir), schedule.steps(), curves, seconds, LEARNED, title, notes)
    (Path(out_dir) / "chosen_hparams.json").write_text(json.dumps(chosen))
    return md


PARTS = ("heldout", "extra", "generalization")
OPTIONAL_PARTS = ("suite",)  # only when asked for: the unseen-task suite takes ~20 min


def generalization_problem(batch_size: int) -> Problem:
    """Returns the generalization check's problem: the 6-layer, 32-channel CNN on all 10
    MNIST classes, at the outer-training problem's ``batch_size``."""
    return Problem("conv6", "mnist", batch_size=batch_size, k=10, class_pools="all")


def evaluate(out_dir: str | os.PathLike, *, seed: int = 0, progress: bool = True,
             parts: tuple[str, ...] = PARTS, cache_dir: str | os.PathLike | None = None) -> str:
    """Returns the results tables of a trained run; writes ``out_dir/eval*/``.

    ``parts``: ``"heldout"`` (the recipe's problem on the test class pool, into
    ``eval/``), ``"extra"`` (each of the config's ``extra_problems``, if any,
    on its test class pool, into ``eval_extra_1/``, ...) and/or
    ``"generalization"`` (the 6-layer CNN, into ``eval_generalization/``, when
    the config's evaluation asks for it).
    ``"suite"`` (only when named) runs the unseen-task suite (`vograd.recipes.suite_run`)
    into ``eval_suite/``.
    ``cache_dir``: reuse and store baseline curves there (`evaluate_family`).
    """
    unknown = sorted(set(parts) - set(PARTS) - set(OPTIONAL_PARTS))
    if unknown or not parts:
        raise ValueError(f"unknown evaluation parts {unknown or list(parts)}; known: "
                         f"{list(PARTS + OPTIONAL_PARTS)}")
    _, config, record = run.read_run(out_dir)
    lopt, theta = run.load_theta(out_dir)
    ev = config.evaluation
    key = jax.random.key(seed + 1_000)
    out = Path(out_dir)
    tables = []
    # The recipe's problem, then each extra outer-training family, on its test class pool.
    held_out = []
    if "heldout" in parts:
        held_out.append((config.problem, key, out / "eval", "", "Held-out tasks"))
    if "extra" in parts:
        for i, problem in enumerate(config.extra_problems, start=1):
            held_out.append((problem, jax.random.fold_in(key, 1 + i), out / f"eval_extra_{i}",
                             f" ({problem.architecture})",
                             f"Held-out tasks, outer-training family {i + 1}"))
    others = {}
    if ev.pretrained:
        from vograd.tasks import pretrained

        others = {f"{n} (shipped)": pretrained.load(n) for n in ev.pretrained}
    for problem, k, where, suffix, heading in held_out:
        md = evaluate_family(problem.family("test"), lopt, theta, ev, ev.inner_steps, k, where,
                             f"{record['recipe']} held-out tasks{suffix}", progress,
                             cache_dir=cache_dir, others=others, **problem.eval_options)
        tables.append(f"## {heading} ({problem.architecture} on {problem.dataset}, test class "
                      f"pool)\n\n{md}\nPlots: {where}/curves.png, differences.png")
    if "generalization" in parts and ev.generalization:
        gen_problem = generalization_problem(config.problem.batch_size)
        gen = gen_problem.family()
        steps = ev.generalization_steps or ev.inner_steps
        gen_ev = replace(ev, num_tasks=ev.generalization_tasks,
                         baselines=ev.generalization_baselines, random_search=0)
        md = evaluate_family(gen, lopt, theta, gen_ev, steps, jax.random.fold_in(key, 1),
                             out / "eval_generalization", "6-layer CNN on MNIST (never seen)", progress,
                             cache_dir=cache_dir, **gen_problem.eval_options)
        tables.append(f"## Generalization: 6-layer CNN on MNIST\n\n{md}\n"
                      f"Plots: {out / 'eval_generalization'}/curves.png")
    if "suite" in parts:
        from vograd.recipes import suite_run

        tables.append(suite_run.compare([str(out_dir)], out / "eval_suite", progress=progress))
    return "\n\n".join(tables)
