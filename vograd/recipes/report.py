"""Results tables, markdown reports and PNG plots of evaluation curves.

Curves come as ``{name: (train, test)}`` with arrays ``[T, S, E]`` (held-out
tasks, seeds, evaluation points). Aggregates are over tasks and seeds:
medians with 25-75 percentile bands, as in Metz et al. 2019 (Figure 6).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from vograd import plotting

Curves = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Row:
    """One optimizer's line of the results table (medians over tasks of seed means)."""

    name: str
    final_train: float
    mean_train: float
    final_test: float
    mean_test: float
    seconds_per_step: float
    wins_train: float | None  # share of tasks where the reference has the lower mean train loss
    wins_test: float | None


def _task_means(x: np.ndarray) -> np.ndarray:
    """Returns the per-task mean over seeds and evaluations ``[T]`` (+inf if a run diverged)."""
    x = np.asarray(x, np.float64)
    ok = np.all(np.isfinite(x), axis=(1, 2))
    return np.where(ok, np.mean(np.where(np.isfinite(x), x, 0), axis=(1, 2)), np.inf)


def _task_finals(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)[:, :, -1]
    return np.where(np.all(np.isfinite(x), axis=1), np.mean(x, axis=1), np.inf)


def table(curves: Curves, seconds: dict[str, float], reference: str) -> list[Row]:
    """Returns one row per optimizer; ``wins_*`` compare ``reference`` to each other one.

    A win is a held-out task on which ``reference``'s loss averaged over
    seeds and the whole run is strictly lower (the paper's Figure 6c metric).
    """
    if reference not in curves:
        raise KeyError(f"reference {reference!r} not among {sorted(curves)}")
    ref_train, ref_test = (_task_means(c) for c in curves[reference])
    rows = []
    for name, (train, test) in curves.items():
        mean_train, mean_test = _task_means(train), _task_means(test)
        other = name != reference
        rows.append(
            Row(
                name=name,
                final_train=float(np.median(_task_finals(train))),
                mean_train=float(np.median(mean_train)),
                final_test=float(np.median(_task_finals(test))),
                mean_test=float(np.median(mean_test)),
                seconds_per_step=float(seconds.get(name, float("nan"))),
                wins_train=float(np.mean(ref_train < mean_train)) if other else None,
                wins_test=float(np.mean(ref_test < mean_test)) if other else None,
            )
        )
    return rows


def markdown_table(rows: list[Row], reference: str) -> str:
    """Returns the table as GitHub markdown."""
    head = (
        "| optimizer | final train | mean train | final test | mean test | s/step | "
        f"{reference} wins (train) | {reference} wins (test) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )

    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    lines = [
        f"| {r.name} | {r.final_train:.4f} | {r.mean_train:.4f} | {r.final_test:.4f} | "
        f"{r.mean_test:.4f} | {r.seconds_per_step:.2e} | {pct(r.wins_train)} | {pct(r.wins_test)} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def plot_curves(path: str, steps: np.ndarray, curves: Curves, seconds: dict[str, float], title: str):
    """Returns the figure written to ``path`` (None without matplotlib): a 2x2 PNG of
    train/test loss against inner steps and wall-clock seconds, one colour per optimizer."""
    fig = plotting.new_figure(figsize=(11, 8))
    if fig is None:
        return None
    axes = fig.subplots(2, 2)
    for name, (train, test) in curves.items():
        per_step = seconds.get(name, np.nan)
        for row, c in enumerate((train, test)):
            plotting.band(axes[row, 0], steps, c, name)
            if np.isfinite(per_step):  # not measured: no wall-clock curve
                plotting.band(axes[row, 1], steps * per_step, c, name)
    for row, split in enumerate(("train", "test")):
        for col in range(2):
            axes[row, col].set_ylabel(f"{split} loss")
            axes[row, col].set_xlabel("inner steps" if col == 0 else
                                      "wall-clock seconds (per-step time measured in this run)")
    for ax in axes.flat:
        if ax.lines:  # a log axis without data cannot place its ticks
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{title}: median (line) and 25-75% (band) over held-out tasks x seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def plot_differences(path: str, curves: Curves, reference: str):
    """Returns the figure written to ``path`` (None without matplotlib): histograms of the
    per-task mean-loss differences (baseline - reference), one colour per baseline.

    Positive values mean the reference optimizer is better (Figure 6c).
    """
    fig = plotting.new_figure(figsize=(11, 4))
    if fig is None:
        return None
    axes = fig.subplots(1, 2)
    diffs = {}
    for col in range(2):
        ref = _task_means(curves[reference][col])
        for name, pair in curves.items():
            if name != reference:
                d = _task_means(pair[col]) - ref
                diffs[name, col] = np.clip(d[np.isfinite(d)], -5, 5)
    finite = [d for d in diffs.values() if d.size]
    edges = np.histogram_bin_edges(np.concatenate(finite) if finite else np.zeros(1), bins=20)
    for col, split in enumerate(("train", "test")):
        for name in curves:
            if name != reference:
                axes[col].hist(diffs[name, col], bins=edges, histtype="step", lw=1.8,
                               color=plotting.color(name), label=name)
        axes[col].axvline(0, color="k", ls="--", lw=0.8)
        axes[col].set_title(f"{split}: baseline - {reference} (>0: {reference} better)")
        axes[col].set_xlabel(f"difference of per-task mean {split} loss (clipped to +-5)")
        axes[col].set_ylabel("number of held-out tasks")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def write_report(
    out_dir: str, steps: np.ndarray, curves: Curves, seconds: dict[str, float],
    reference: str, title: str, notes: str = "",
) -> str:
    """Writes results.json and report.md, then the PNG plots (skipped without matplotlib),
    into ``out_dir``; returns the markdown table."""
    os.makedirs(out_dir, exist_ok=True)
    rows = table(curves, seconds, reference)
    md = markdown_table(rows, reference)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(
            {
                "steps": np.asarray(steps).tolist(),
                "rows": [asdict(r) for r in rows],
                "curves": {
                    k: {"train": np.asarray(a).tolist(), "test": np.asarray(b).tolist()}
                    for k, (a, b) in curves.items()
                },
            },
            f,
        )
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(f"# {title}\n\n{notes}\n\n{md}\n![curves](curves.png)\n\n![differences](differences.png)\n")
    plot_curves(os.path.join(out_dir, "curves.png"), steps, curves, seconds, title)
    plot_differences(os.path.join(out_dir, "differences.png"), curves, reference)
    return md
