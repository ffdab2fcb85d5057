"""Metz et al. 2020, Figure 5: the gap to tuned Adam as tasks move off the training distribution.

Two shipped learned optimizers (`vograd.tasks.pretrained`) are run untuned on
MLP classification tasks that differ from one training point along one axis
at a time: hidden width, depth, batch size and dataset. The training point is
``metz2019-small``'s own outer-training problem (one hidden layer of 32 ReLU
units on 14x14 Fashion-MNIST, batch 128, train class pool, 300-step episodes:
docs/results.md), a NARROW training distribution; ``adaptive`` (the default)
was outer-trained on a mix that contains this same problem and four others.

At every point, ``T`` tasks x ``S`` inner seeds run ``HORIZON`` steps with each
learned optimizer and with Adam at the 11 learning rates of the project's
evaluation grid (`vograd.recipes.evaluation.log_grid`, 1e-4 to 10), on the
same initialisations and batches. Adam's rate is tuned per task (lowest mean
training loss over its seeds and the episode, `evaluation.select`). The gap
of seed ``s`` is

    gap_s = mean_t log( L_learned[t, s] / L_adam*[t, s] ),

``L`` the training loss averaged over the episode, ``adam*`` the task's tuned
Adam: 0 means as good as per-task-tuned Adam, 0.1 is ~10% worse. Intervals
are Student-t over the ``S`` seeds; the difference of a point to the training
point is paired by seed (same seed index, different tasks: an unpaired-in-tasks,
paired-in-seeds comparison).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import optax

from vograd.recipes.config import Problem
from vograd.recipes.evaluation import InnerSchedule, grid_curves, log_grid, select
from vograd.recipes.reproductions import common, confidence
from vograd.recipes.reproductions.base import Reproduction, Size

NAME = "metz2020-outer-generalization"
OPTIMIZERS = ("metz2019-small", "adaptive")
TRAINING_POINT = Problem("mlp", "fashion_mnist", hidden=(32,), batch_size=128, downsample=2)


def _axes(size: str, train: Problem) -> dict[str, list[tuple[str, Problem]]]:
    """Returns each axis' off-training values in order of distance from ``train``."""
    if size == "tiny":
        return {"width": [("8", replace(train, hidden=(8,)))],
                "dataset": [("mnist 14x14", replace(train, dataset="mnist"))]}
    return {
        "width": [(str(w), replace(train, hidden=(w,))) for w in (64, 128, 256)],
        "depth": [(str(d), replace(train, hidden=(32,) * d)) for d in (2, 3, 4)],
        "batch size": [(str(b), replace(train, batch_size=b)) for b in (32, 8, 2)],
        "dataset": [("mnist 14x14", replace(train, dataset="mnist")),
                    ("fashion 28x28", replace(train, downsample=1)),
                    ("mnist 28x28", replace(train, dataset="mnist", downsample=1))],
    }


SIZES = {  # size -> (training point, inner steps, eval every, tasks per point); seeds: --seeds
    "tiny": (replace(TRAINING_POINT, hidden=(4,), batch_size=16), 20, 10, 2),
    "full": (TRAINING_POINT, 300, 30, 4),
}
TRAINING_LABEL = {"width": "32", "depth": "1", "batch size": "128", "dataset": "fashion 14x14"}
# An axis "degrades gradually" when the gap never falls by more than this (in log-ratio units,
# ~2%) from one point to the next farther one: noise of that size is not a reversal.
SLACK = 0.02


def gaps(learned: np.ndarray, adam: np.ndarray) -> np.ndarray:
    """Returns ``gap_s = mean_t log(mean_e learned[t, s, e] / mean_e adam[t, s, e])`` ``[S]``
    from train curves ``[T, S, E]`` (inf where the learned optimizer diverged)."""
    lm, am = np.mean(learned, axis=-1), np.mean(adam, axis=-1)  # [T, S]
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.log(lm / am)
    g = np.where(np.isfinite(lm), g, np.inf)
    return np.mean(g, axis=0)


def point(problem: Problem, steps: int, eval_every: int, num_tasks: int, num_seeds: int,
          key: jax.Array) -> dict[str, np.ndarray]:
    """Returns the arrays of one point: per optimizer of `OPTIMIZERS` its train curves
    ``[T, S, E]``, tuned Adam's ``adam`` ``[T, S, E]``, its per-task rate ``adam_lr`` ``[T]``
    and the grid's scores ``adam_scores`` ``[G, T]`` (same tasks, inits and batches)."""
    from vograd.tasks import pretrained

    family = problem.family("train")
    tasks, keys = common.sample_tasks(family, key, num_tasks, num_seeds)
    schedule = InnerSchedule(steps, eval_every)
    grid = log_grid()
    train, test = grid_curves(family, lambda lr: optax.adam(lr), grid, tasks, keys, schedule)
    tuned = select(np.asarray(train), np.asarray(test), "train")
    out = {"adam": tuned.train, "adam_lr": np.asarray(grid)[tuned.best],
           "adam_scores": tuned.scores}
    for name in OPTIMIZERS:
        lopt, theta = pretrained.load_optimizer(name)
        out[name] = common.learned_curves(family, lopt, theta, tasks, keys, schedule)
    return out


def _point_key(axis: str, label: str) -> jax.Array:
    return jax.random.key(7_000 + sum(map(ord, f"{axis}/{label}")))


def judge(table: dict) -> tuple[str, list[dict]]:
    """Returns the verdict and one sub-claim per (optimizer, axis).

    An axis *degrades* when the paired difference (farthest point minus training point,
    over seeds) has its 95% interval above 0; for the dataset axis (no order) the largest
    gap stands in for the farthest. It degrades *gradually* when, moving away from the
    training point, the mean gap never drops by more than `SLACK` and rises (if at all)
    over more than one step rather than all at the first. A (optimizer, axis) claim holds
    when it degrades gradually (dataset: when it degrades). Reproduced: every claim holds;
    partly: some; not reproduced: none.
    """
    claims = []
    for opt, axes in table.items():
        for axis, points in axes.items():
            means = [p["gap"]["mean"] for p in points]
            if any(m is None for m in means):
                claims.append({"optimizer": opt, "axis": axis, "supported": False,
                               "evidence": "a run diverged"})
                continue
            far = 1 + int(np.argmax(means[1:])) if axis == "dataset" else len(points) - 1
            diff = points[far]["vs_training"]
            degrades = confidence.excludes_zero(diff) and diff["mean"] > 0
            steps = np.diff(means)
            gradual = True
            if axis != "dataset":
                rise = means[-1] - means[0]
                gradual = bool(np.all(steps > -SLACK) and (
                    len(steps) < 2 or rise <= 0 or steps[0] < 0.8 * rise))
            claims.append({
                "optimizer": opt, "axis": axis, "degrades": bool(degrades), "gradual": gradual,
                "supported": bool(degrades and gradual),
                "evidence": (" -> ".join(f"{p['label']}: {m:+.3f}" for p, m in zip(points, means))
                             + f"; farthest - training {confidence.format_interval(diff)}")})
    return confidence.verdict([c["supported"] for c in claims]), claims


def run(out_dir: Path, size: Size, seeds: int, progress: bool) -> dict:
    """Returns results.json's dict, computing the points ``out_dir`` lacks (one stage each)."""
    out = Path(out_dir)
    train, steps, every, num_tasks = SIZES[size]
    axes = _axes(size, train)

    def stage(axis: str, label: str, problem: Problem) -> dict[str, np.ndarray]:
        slug = "".join(ch if ch.isalnum() else "_" for ch in f"{axis}_{label}")
        if progress:
            print(f"[{NAME}] {axis} = {label}", flush=True)
        return common.stage(out / f"point_{slug}_seeds{seeds}.npz", lambda: point(
            problem, steps, every, num_tasks, seeds, _point_key(axis, label)))

    base = stage("training", "point", train)
    table: dict[str, dict[str, list[dict]]] = {o: {} for o in OPTIMIZERS}
    adam_rates: dict[str, list] = {}
    for axis, values in axes.items():
        arrays = [base] + [stage(axis, label, p) for label, p in values]
        labels = [TRAINING_LABEL[axis]] + [label for label, _ in values]
        for opt in OPTIMIZERS:
            per_seed = [gaps(a[opt], a["adam"]) for a in arrays]
            table[opt][axis] = [{
                "label": lab, "gap": confidence.mean_interval(g),
                "vs_training": confidence.paired_difference(per_seed[0], g),
                "per_seed": [float(x) for x in g]} for lab, g in zip(labels, per_seed)]
        adam_rates[axis] = [{"label": lab, "per_task_lr": a["adam_lr"].tolist(),
                             "tuned_final": float(np.mean(a["adam"][..., -1]))}
                            for lab, a in zip(labels, arrays)]
    verdict, claims = judge(table)
    results = {"name": NAME, "size": size, "seeds": seeds, "verdict": verdict,
               "inner_steps": steps, "tasks_per_point": num_tasks,
               "grid": [float(x) for x in log_grid()], "gaps": table, "adam": adam_rates,
               "claims": claims}
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    plot(out / "gaps.png", table)
    return results


def report(results: dict) -> str:
    """Returns report.md."""
    lines = REPRODUCTION.report_header(
        f"vograd reproduce {NAME} --size {results['size']} --seeds {results['seeds']}")
    lines += [f"Gap to per-task-tuned Adam (11 rates, 1e-4 to 10): mean over {results['tasks_per_point']} "
              f"tasks of log(learned / tuned Adam) of the training loss averaged over "
              f"{results['inner_steps']} steps; mean [95% t-interval] over "
              f"{results['seeds']} inner seeds. 0: as good as tuned Adam; +0.1: ~10% worse. "
              "The first value of each axis is the training point.", ""]
    for opt, axes in results["gaps"].items():
        lines += [f"### {opt}", "", "| axis | value | gap [95% CI] | minus training point [95% CI] |",
                  "|---|---|---|---|"]
        for axis, points in axes.items():
            for i, p in enumerate(points):
                vs = "(training point)" if i == 0 else confidence.format_interval(p["vs_training"])
                lines.append(f"| {axis} | {p['label']} | {confidence.format_interval(p['gap'])} | {vs} |")
        lines.append("")
    lines += ["| optimizer | axis | degrades | gradually | evidence |", "|---|---|---|---|---|"]
    for c in results["claims"]:
        yes = lambda k: "-" if k not in c else ("yes" if c[k] else "no")  # noqa: E731
        lines.append(f"| {c['optimizer']} | {c['axis']} | {yes('degrades')} | {yes('gradual')} | "
                     f"{c['evidence']} |")
    lines += ["", f"**Verdict: {results['verdict']}.**", "", "![gaps](gaps.png)", ""]
    return "\n".join(lines)


def plot(path: Path, table: dict):
    """Draws gap against each axis (one panel per axis, one line per optimizer, 95% error
    bars over seeds); returns the PNG path, or None without matplotlib."""
    from vograd import plotting

    axes_names = list(next(iter(table.values())))
    fig = plotting.new_figure(figsize=(3.8 * len(axes_names), 3.4), layout="constrained")
    if fig is None:
        return None
    panels = np.atleast_1d(fig.subplots(1, len(axes_names), squeeze=False)).ravel()
    for ax, axis in zip(panels, axes_names):
        for i, (opt, axes) in enumerate(table.items()):
            pts = axes[axis]
            x = np.arange(len(pts)) + 0.06 * (i - 0.5)
            m = np.array([np.nan if p["gap"]["mean"] is None else p["gap"]["mean"] for p in pts])
            lo = np.array([np.nan if p["gap"]["low"] is None else p["gap"]["low"] for p in pts])
            hi = np.array([np.nan if p["gap"]["high"] is None else p["gap"]["high"] for p in pts])
            ax.errorbar(x, m, yerr=[m - lo, hi - m], marker="o", capsize=3, color=f"C{i}",
                        label=opt)
        ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(pts)), [p["label"] for p in pts], fontsize=7)
        ax.set_xlabel(f"{axis} (first: training point)")
        ax.set_ylabel("log(learned / tuned Adam) train loss")
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    return Path(path)


REPRODUCTION = Reproduction(
    name=NAME,
    paper="Metz et al. 2020, Tasks, stability, architecture, and compute: training more "
          "effective learned optimizers",
    figure="Figure 5",
    claim=("Outer-generalization in a controlled setting: as an MLP's width, depth, batch size "
           "and dataset move away from the learned optimizer's training distribution, its "
           "performance relative to per-task learning-rate-tuned Adam degrades gradually rather "
           "than abruptly."),
    scale=("The optimizers are vograd's shipped metz2019-small (narrow: one 196-32-k ReLU MLP "
           "problem on 14x14 Fashion-MNIST, 300-step episodes) and adaptive (a 5-family mix), not "
           "the paper's optimizer trained on thousands of tasks; the paper sweeps around a "
           "2x32 MNIST MLP and a CNN, here around metz2019-small's own training problem, 3 "
           "values per axis (width 64-256, depth 2-4, batch 32-2, 3 datasets); 300 inner steps "
           "(paper: 10k), 4 tasks x 3 inner seeds per point, Adam tuned per task over 11 rates."),
    run=run,
)

__all__ = ["OPTIMIZERS", "REPRODUCTION", "gaps", "judge", "point", "run"]
