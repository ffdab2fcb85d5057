"""Shared pieces of the reproductions: resumable stages, confidence intervals, tuned
baselines, LSTM outer-training, the report and the curve plots.

Resumability: every expensive stage writes one ``.npz`` (or a training
checkpoint directory) into the output directory and is skipped when that
file exists, so a rerun after an interruption recomputes only what is missing.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vograd.checkpoint import atomic_write
from vograd.recipes.evaluation import InnerSchedule, grid_curves, log_grid, selection_score

# The hand-designed baselines of Andrychowicz et al. (2016), Figures 2 and 4: each is a
# factory ``lr -> optax.GradientTransformation`` (momentum 0.9 for Nesterov, as usual).
BASELINES: dict[str, Callable[[jax.Array], optax.GradientTransformation]] = {
    "adam": lambda lr: optax.adam(lr),
    "rmsprop": lambda lr: optax.rmsprop(lr),
    "sgd": lambda lr: optax.sgd(lr),
    "nag": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
}


# What a tiny (CI) run compares against: every stage runs, with two compilations fewer.
TINY_BASELINES = ("adam", "sgd")


def baselines_for(size: str) -> tuple[str, ...]:
    """Returns the baselines a run of ``size`` compares against: all of `BASELINES` at full
    size, `TINY_BASELINES` at tiny (each baseline costs one compilation, most of tiny's time)."""
    return tuple(BASELINES) if size == "full" else TINY_BASELINES


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Returns ``{"mean", "low", "high", "n", "values"}``: the mean of ``values`` ``[n]`` and
    its Student-t interval ``mean -+ t_{(1+c)/2, n-1} * sd / sqrt(n)`` (zero width for n = 1).

    Non-finite values (diverged runs) make the mean and interval non-finite: a
    diverged seed is reported as such, not averaged away.
    """
    from scipy import stats

    x = np.asarray(values, np.float64).ravel()
    n = x.size
    mean = float(np.mean(x))
    half = 0.0
    if n > 1:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n,
            "values": [float(v) for v in x]}


def fmt_ci(ci: dict, digits: int = 3) -> str:
    """Returns ``"mean [low, high]"`` with ``digits`` significant digits."""
    f = f"{{:.{digits}g}}"
    return f"{f.format(ci['mean'])} [{f.format(ci['low'])}, {f.format(ci['high'])}]"


def stage(path: Path, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
    """Returns the arrays saved at ``path`` (an ``.npz``), computing and saving them first
    if the file is missing. The file is written to a temporary name and renamed, so an
    interrupted write never leaves a truncated stage that a rerun would trust."""
    path = Path(path)
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def learned_curves(family, lopt, theta, tasks, keys, schedule: InnerSchedule) -> np.ndarray:
    """Returns the train curves ``[T, S, E]`` of the learned optimizer ``lopt(theta)``
    on ``tasks`` (leading ``[T]``) with inner keys ``keys`` ``[T, S]``."""
    make = lambda _: lopt.as_optax(theta)  # noqa: E731 (no hyperparameters to grid over)
    train, _ = grid_curves(family, make, jnp.zeros((1,)), tasks, keys, schedule)
    return np.asarray(train[0])


def tuned_baselines(family, tasks, keys, schedule: InnerSchedule, grid: jax.Array,
                    names: tuple[str, ...] = tuple(BASELINES)) -> dict:
    """Returns, per baseline, ``{"train": [T, S, E], "lr": float, "scores": [G]}``: the curves
    of the learning rate in ``grid`` with the lowest mean training loss over all tasks, seeds
    and evaluations (one rate for the whole family, as the paper tunes its baselines).

    Tuning on the evaluation tasks themselves favours the baselines, which makes a
    win of the learned optimizer the more convincing.
    """
    out = {}
    for name in names:
        make_lr = BASELINES[name]
        train, _ = grid_curves(family, lambda h, m=make_lr: m(h), grid, tasks, keys, schedule)
        train = np.asarray(train)  # [G, T, S, E]
        g, t, s, e = train.shape
        scores = selection_score(train.reshape(g, 1, t * s, e))[:, 0]  # [G]
        best = int(np.argmin(scores))
        out[name] = {"train": train[best], "lr": float(grid[best]), "scores": scores}
    return out


def arm_curves(trained: dict, arms: tuple[str, ...], family, tasks, keys,
               schedule: InnerSchedule) -> dict[str, np.ndarray]:
    """Returns ``{"ARM_train", "ARM_test"}``: curves ``[n, T, S, E]`` of each arm's ``n``
    thetas (``trained[arm]["thetas"]``, one optimizer ``trained[arm]["lopt"]`` for all),
    every theta of every arm one grid of one compiled call (theta as the hyperparameter)."""
    lopt = trained[arms[0]]["lopt"]
    thetas = [t for arm in arms for t in trained[arm]["thetas"]]
    grid = jax.tree.map(lambda *x: jnp.stack(x), *thetas)
    train, test = (np.asarray(x) for x in grid_curves(family, lopt.as_optax, grid, tasks, keys,
                                                      schedule))
    out, start = {}, 0
    for arm in arms:
        n = len(trained[arm]["thetas"])
        out[f"{arm}_train"], out[f"{arm}_test"] = train[start:start + n], test[start:start + n]
        start += n
    return out


def tuned_stage(name: str, grid, num_steps: int, family, tasks, keys,
                schedule: InnerSchedule) -> dict:
    """Returns ``{"train", "test" [T, S, E], "best_train", "best_test" [T]}`` of baseline
    ``name`` (`vograd.recipes.evaluate_run.baseline_factories`, its schedule over
    ``num_steps``) tuned per task over ``grid``: train curves of the point best on training
    loss, test curves of the point best on test loss (`vograd.recipes.evaluation.select`)."""
    from vograd.recipes.evaluate_run import baseline_factories
    from vograd.recipes.evaluation import select

    make, _ = baseline_factories(num_steps)[name]
    train, test = grid_curves(family, make, grid, tasks, keys, schedule)
    by_train, by_test = select(train, test, "train"), select(train, test, "test")
    return {"train": by_train.train, "test": by_test.test, "best_train": by_train.best,
            "best_test": by_test.best}


def sample_tasks(family, key: jax.Array, num_tasks: int, num_inits: int):
    """Returns ``(tasks, keys)``: ``num_tasks`` tasks (leading ``[T]`` axis) and inner
    keys ``[T, S]`` for ``num_inits`` runs of each."""
    k_tasks, k_runs = jax.random.split(key)
    tasks = jax.vmap(family.sample)(jax.random.split(k_tasks, num_tasks))
    keys = jax.random.split(k_runs, (num_tasks, num_inits))
    return tasks, keys


def outer_train_lstm(config, seed: int, directory: Path, progress: bool):
    """Returns ``(lopt, theta, history)`` after outer-training the Andrychowicz 2016 recipe
    ``config`` with ``seed`` (resumable: checkpoints and the log live in ``directory``)."""
    from vograd.train import train

    directory.mkdir(parents=True, exist_ok=True)
    system = config.system("train")
    result = train(
        system, config.estimator, config.outer_optimizer(), config.outer_steps,
        jax.random.key(seed), checkpoint_dir=directory / "checkpoints",
        checkpoint_every=config.checkpoint_every, log=directory / "log.jsonl", progress=progress,
    )
    history = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()
               if line.strip()]
    return system.optimizer, result.theta, history


def outer_loss_curve(history: list[dict], bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(step, loss)``: the outer loss of ``history`` averaged in ``bins`` equal
    blocks of steps (the per-step loss is one noisy window)."""
    loss = np.asarray([h["loss"] for h in history], np.float64)
    blocks = np.array_split(np.arange(loss.size), min(bins, loss.size))
    return (np.array([b[-1] + 1 for b in blocks]), np.array([np.nanmean(loss[b]) for b in blocks]))


def verdict_lines(results: dict, plot: str) -> list[str]:
    """Returns a report's closing markdown lines: the table of ``results["claims"]``
    (each ``{"claim", "supported", "evidence"}``), the verdict and the plot ``plot``."""
    lines = ["| sub-claim | supported | evidence |", "|---|---|---|"]
    lines += [f"| {c['claim']} | {'yes' if c['supported'] else 'no'} | {c['evidence']} |"
              for c in results["claims"]]
    return lines + ["", f"**Verdict: {results['verdict']}.**", "", f"![curves]({plot})", ""]


def write_json(path: Path, obj: dict, indent: int | None = 1) -> None:
    """Writes ``obj`` as JSON (NaN/inf as strings: JSON has no such numbers), atomically: an
    interrupted write never leaves a truncated file that a rerun would trust."""
    def clean(x):
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, float)):
            return float(x) if math.isfinite(x) else str(float(x))
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        return x

    atomic_write(path, (json.dumps(clean(obj), indent=indent) + "\n").encode())


def json_stage(path: Path, compute: Callable[[], dict | list]) -> dict | list:
    """Returns the JSON at ``path``, computing it and writing it (`write_json`) first if the
    file is missing: a resumable stage whose result is JSON rather than arrays (`stage`)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, compute(), indent=2)
    return json.loads(path.read_text())


def curves_figure(panels: list[tuple[str, np.ndarray, dict[str, np.ndarray]]], path: Path,
                  ylabel: str = "training loss") -> Path | None:
    """Draws one panel per ``(title, steps [E], {name: per-seed mean curves [n, E]})`` on a
    log scale: the geometric mean over seeds and its 95% t-interval computed on log10
    values (a t-interval of the losses themselves, from 3 seeds, would reach below zero);
    returns the PNG path, or None without matplotlib (`vograd.plotting.new_figure` warns once)."""
    from vograd import plotting

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = plotting.new_figure(figsize=(4.2 * cols, 3.3 * rows), layout="constrained")
    if fig is None:
        return None
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (title, steps, curves) in zip(axes, panels):
        for name, per_seed in curves.items():
            logs = np.log10(np.maximum(np.asarray(per_seed, np.float64), 1e-30))
            cis = [mean_ci(logs[:, e]) for e in range(logs.shape[1])]
            c = plotting.color("learned" if name == "lstm" else name)
            ax.plot(steps, [10 ** x["mean"] for x in cis], color=c, lw=1.6, label=name)
            if logs.shape[0] > 1:
                ax.fill_between(steps, [10 ** x["low"] for x in cis],
                                [10 ** x["high"] for x in cis], color=c, alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("inner step")
        ax.set_ylabel(f"{ylabel} (geo. mean over seeds, 95% CI)", fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    return Path(path)


def compare_to_baselines(lstm: np.ndarray, baselines: dict[str, np.ndarray]) -> dict:
    """Returns per baseline the paired difference ``lstm - baseline`` of per-seed values
    ``[n]`` with its CI and ``"better"``/``"worse"``/``"tie"`` (whether the CI excludes 0)."""
    out = {}
    for name, values in baselines.items():
        ci = mean_ci(np.asarray(lstm) - np.asarray(values))
        finite = math.isfinite(ci["low"]) and math.isfinite(ci["high"])
        if not finite:
            outcome = "worse" if not np.all(np.isfinite(lstm)) else "better"
        else:
            outcome = "better" if ci["high"] < 0 else "worse" if ci["low"] > 0 else "tie"
        out[name] = {"difference": ci, "outcome": outcome}
    return out


def publish(out_dir: Path, name: str, docs_root: Path | None = None) -> Path:
    """Copies ``results.json``, ``report.md`` and the PNGs of ``out_dir`` into
    ``docs/results/reproductions/NAME/`` (under ``docs_root``, default the working
    directory) and returns that directory."""
    dest = Path(docs_root or ".") / "docs" / "results" / "reproductions" / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in [out_dir / "results.json", out_dir / "report.md", *sorted(out_dir.glob("*.png"))]:
        if f.exists():
            shutil.copy2(f, dest / f.name)
    return dest


__all__ = ["BASELINES", "arm_curves", "compare_to_baselines", "curves_figure", "fmt_ci", "learned_curves",
           "json_stage", "log_grid", "mean_ci", "outer_loss_curve", "outer_train_lstm", "publish",
           "sample_tasks", "stage", "tuned_baselines", "tuned_stage", "write_json"]


def lstm_vs_baselines(family, lopt, theta, key: jax.Array, num_tasks: int, num_inits: int,
                      schedule: InnerSchedule, grid: jax.Array,
                      baselines: tuple[str, ...] = tuple(BASELINES)) -> dict[str, np.ndarray]:
    """Returns the train curves ``[T, S, E]`` of the learned optimizer (``"lstm"``) and of
    each learning-rate-tuned baseline of ``baselines`` (by name, with its rate as
    ``"lr_NAME"``) on the same ``num_tasks`` fresh tasks and ``num_inits`` initialisations
    each (common random numbers)."""
    tasks, keys = sample_tasks(family, key, num_tasks, num_inits)
    out = {"lstm": learned_curves(family, lopt, theta, tasks, keys, schedule)}
    for name, tuned in tuned_baselines(family, tasks, keys, schedule, grid, baselines).items():
        out[name] = tuned["train"]
        out[f"lr_{name}"] = np.asarray(tuned["lr"])
    return out


def final_losses(per_seed: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    """Returns per optimizer the per-seed mean final training loss ``[n]`` (mean over tasks
    and initialisations of the last evaluation block: for ``eval_every = 1`` the loss at
    the last step, for blocks of 10 the mean over its last 10 steps)."""
    return {n: np.array([np.mean(s[n][..., -1]) for s in per_seed]) for n in names}


def seed_mean_curves(per_seed: list[dict[str, np.ndarray]], names: list[str]):
    """Returns per optimizer the per-seed mean curves ``[n, E]`` (mean over tasks and inits)."""
    return {n: np.stack([np.mean(s[n], axis=(0, 1)) for s in per_seed]) for n in names}


def comparison_rows(finals: dict[str, np.ndarray], learned: str = "lstm") -> tuple[dict, str]:
    """Returns ``(summary, markdown table)``: per optimizer the CI of its final loss, and the
    paired comparison of ``learned`` against each other optimizer."""
    others = {n: v for n, v in finals.items() if n != learned}
    comparisons = compare_to_baselines(finals[learned], others)
    summary = {"final_loss": {n: mean_ci(v) for n, v in finals.items()}, "vs": comparisons}
    rows = ["| optimizer | final training loss, mean [95% CI] | lstm - optimizer [95% CI] | lstm is |",
            "|---|---|---|---|"]
    for n, v in finals.items():
        if n == learned:
            rows.append(f"| **{n}** | {fmt_ci(summary['final_loss'][n])} | | |")
        else:
            c = comparisons[n]
            rows.append(f"| {n} | {fmt_ci(summary['final_loss'][n])} | "
                        f"{fmt_ci(c['difference'])} | {c['outcome']} |")
    return summary, "\n".join(rows) + "\n"
