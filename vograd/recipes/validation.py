"""Choosing among outer-training runs on validation tasks of their own training distribution.

Which of several outer seeds to ship is decided here, never on the unseen-task
suite: each run's optimizer trains fresh tasks drawn from every family it was
outer-trained on (the train class pools, with task and inner seeds no outer
step used), for the training horizon. A run's score is the geometric mean over
families of its mean training loss divided by the best run's on that family
(1.0: best on every family); the lowest score wins.

    python -m vograd.recipes.validation runs/adaptive-s0 runs/adaptive-s1 runs/adaptive-s2

The same tasks also choose the learning rate an `AdaptiveMLPOptimizer`
starts from (it is Adam at that rate before outer training): `adam_sweep`
scores Adam at each rate of the evaluation grid on them, the same way, and
the lowest score is the rate to start from (``--adam`` with the recipe's
families, no runs needed).

    python -m vograd.recipes.validation --adam

Whether outer training left an `AdaptiveMLPOptimizer`'s global learning rate
where the training distribution wants it (truncated windows bias it down:
the short-horizon bias) is checked the same way: `rate_sweep` scores the
trained optimizer with its rate multiplied by each factor (1 is the run as
trained; ``--rate-factors`` with one run directory).

    python -m vograd.recipes.validation runs/adaptive-s0 --rate-factors 0.5 1 1.5 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vograd.recipes import run
from vograd.recipes.evaluation import InnerSchedule, grid_curves, log_grid, selection_score

# Keys no outer-training step uses: outer training derives its keys from the seed's key.
VALIDATION_SEED = 2**31 - 1


def _validation_tasks(problems, num_tasks: int, num_seeds: int, progress: bool):
    """Yields ``(family, tasks [T], keys [T, S])`` of each family's validation tasks."""
    key = jax.random.key(VALIDATION_SEED)
    for i, problem in enumerate(problems):
        if progress:
            print(f"[validation] family {i + 1}/{len(problems)}: {problem.architecture} on "
                  f"{problem.dataset}", file=sys.stderr, flush=True)
        family = problem.family("train")
        k_tasks, k_seeds = jax.random.split(jax.random.fold_in(key, i))
        tasks = jax.vmap(family.sample)(jax.random.split(k_tasks, num_tasks))
        keys = jax.random.split(k_seeds, num_tasks * num_seeds).reshape(num_tasks, num_seeds)
        yield family, tasks, keys


def _validation_losses(problems, horizon: int, optimizers: dict, num_tasks: int, num_seeds: int,
                       progress: bool) -> dict[str, list[float]]:
    """Returns ``{name: [mean train loss per family]}`` of each optax optimizer on the
    validation tasks (``num_tasks`` per family, ``num_seeds`` inner seeds, ``horizon`` steps)."""
    schedule = InnerSchedule(horizon, horizon // 10, 1)
    losses = {name: [] for name in optimizers}
    for family, tasks, keys in _validation_tasks(problems, num_tasks, num_seeds, progress):
        for name, opt in optimizers.items():
            train, _ = grid_curves(family, lambda _, o=opt: o, jnp.zeros((1,)), tasks, keys, schedule)
            losses[name].append(float(np.mean(selection_score(np.asarray(train)[0]))))
    return losses


def _scores(losses: dict[str, list[float]]) -> dict[str, float]:
    """Returns each name's geometric mean over families of its loss over the family's best
    (1.0: best everywhere); a non-finite loss in any family scores +inf. Only ratios enter,
    so the ranking does not depend on the loss scales of the families."""
    table = np.array(list(losses.values()), dtype=np.float64)  # [R, F]
    finite = np.all(np.isfinite(table), axis=1)
    best = np.min(np.where(np.isfinite(table), table, np.inf), axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.exp(np.mean(np.log(table / best), axis=1))
    return dict(zip(losses, np.where(finite, scores, np.inf).tolist()))


def adam_sweep(problems, horizon: int, lrs=None, *, num_tasks: int = 2, num_seeds: int = 2,
               progress: bool = True) -> dict:
    """Returns ``{"scores": {lr: score}, "losses": {lr: [...]}, "best": lr}`` for Adam at each
    learning rate of ``lrs`` (default: the evaluation grid, 11 from 1e-4 to 10) on the
    validation tasks of ``problems`` (a diverged rate scores +inf)."""
    import optax

    lrs = jnp.asarray(log_grid() if lrs is None else lrs)
    names = [f"{lr:.3g}" for lr in np.asarray(lrs)]
    schedule = InnerSchedule(horizon, horizon // 10, 1)
    losses = {name: [] for name in names}
    for family, tasks, keys in _validation_tasks(problems, num_tasks, num_seeds, progress):
        train, _ = grid_curves(family, optax.adam, lrs, tasks, keys, schedule)  # [G, T, S, E]
        for name, score in zip(names, selection_score(np.asarray(train)).mean(axis=-1)):
            losses[name].append(float(score))
    scores = _scores(losses)
    best = min(scores, key=scores.get)
    return {"scores": scores, "losses": losses, "best": float(np.asarray(lrs)[names.index(best)])}


def rate_sweep(lopt, theta, problems, horizon: int, factors=(0.5, 1.0, 1.5, 2.0, 3.0), *,
               num_tasks: int = 2, num_seeds: int = 2, progress: bool = True) -> dict:
    """Returns ``{"scores": {factor: score}, "losses": {factor: [...]}, "best": factor,
    "lr": trained rate}`` of an `AdaptiveMLPOptimizer` with weights ``theta`` and its
    global rate ``lr * exp(lr_mult * log_lr)`` multiplied by each factor (``log_lr``
    shifted by ``log(factor) / lr_mult``; the rest of theta unchanged), on the validation
    tasks of ``problems``."""
    from vograd.tasks.optimizers import AdaptiveMLPOptimizer

    if not isinstance(lopt, AdaptiveMLPOptimizer):
        raise ValueError(f"rate_sweep needs an AdaptiveMLPOptimizer run, got {type(lopt).__name__}")
    if not factors or not all(np.isfinite(f) and f > 0 for f in factors):
        raise ValueError(f"rate factors must be finite and > 0, got {list(factors)}")
    optimizers = {f"{f:g}": lopt.as_optax(lopt.scale_rate(theta, f)) for f in factors}
    losses = _validation_losses(problems, horizon, optimizers, num_tasks, num_seeds, progress)
    scores = _scores(losses)
    best = min(scores, key=scores.get)
    rate = lopt.lr * float(jnp.exp(lopt.lr_mult * theta.log_lr))
    return {"scores": scores, "losses": losses, "best": float(best), "lr": rate}


def validate(run_dirs: list[str | os.PathLike], *, num_tasks: int = 2, num_seeds: int = 2,
             progress: bool = True) -> dict:
    """Returns ``{"scores": {run: score}, "losses": {run: [per-family mean train loss]},
    "best": run}`` (see the module docstring)."""
    if not run_dirs:
        raise ValueError("name at least one run directory")
    configs, learned = [], {}
    for d in run_dirs:
        _, config, _ = run.read_run(d)
        configs.append(config)
        lopt, theta = run.load_theta(d)
        learned[str(d)] = lopt.as_optax(theta)
    problems = configs[0].problems
    if any(c.problems != problems or c.horizon != configs[0].horizon for c in configs):
        raise ValueError("runs to compare must share their training families and horizon")
    losses = _validation_losses(problems, configs[0].horizon, learned, num_tasks, num_seeds,
                                progress)
    scores = _scores(losses)
    return {"scores": scores, "losses": losses, "best": min(scores, key=scores.get)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vograd.recipes.validation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="run directories of one recipe and preset")
    parser.add_argument("--adam", action="store_true",
                        help="score Adam over the learning-rate grid on the adaptive recipe's "
                             "families instead (the starting learning rate)")
    parser.add_argument("--rate-factors", type=float, nargs="+", metavar="F",
                        help="with one AdaptiveMLPOptimizer run: score it with its learning rate "
                             "multiplied by each factor")
    parser.add_argument("--tasks", type=int, default=2, help="validation tasks per family")
    parser.add_argument("--seeds", type=int, default=2, help="inner seeds per task")
    args = parser.parse_args(argv)
    if args.adam:
        from vograd.recipes.adaptive import Adaptive

        config = Adaptive()
        result = adam_sweep(config.problems, config.horizon, num_tasks=args.tasks,
                            num_seeds=args.seeds)
    elif args.rate_factors:
        if len(args.runs) != 1:
            parser.error("--rate-factors takes exactly one run directory")
        _, config, _ = run.read_run(args.runs[0])
        lopt, theta = run.load_theta(args.runs[0])
        try:
            result = rate_sweep(lopt, theta, config.problems, config.horizon, args.rate_factors,
                                num_tasks=args.tasks, num_seeds=args.seeds)
        except ValueError as e:
            parser.error(str(e))
    elif args.runs:
        result = validate(args.runs, num_tasks=args.tasks, num_seeds=args.seeds)
    else:
        parser.error("name run directories, or pass --adam")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
