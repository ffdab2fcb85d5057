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


def _band(ax, x, curves: np.ndarray, label: str):
    flat = np.asarray(curves, np.float64).reshape(-1, curves.shape[-1])
    lo, mid, hi = np.nanpercentile(np.where(np.isfinite(flat), flat, np.nan), [25, 50, 75], axis=0)
    (line,) = ax.plot(x, mid, label=label)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)


def plot_curves(path: str, steps: np.ndarray, curves: Curves, seconds: dict[str, float], title: str):
    """Writes a 2x2 PNG: train/test loss against inner steps and wall-clock seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for name, (train, test) in curves.items():
        wall = steps * seconds.get(name, np.nan)
        for row, (split, c) in enumerate((("train", train), ("test", test))):
            _band(axes[row, 0], steps, c, name)
            _band(axes[row, 1], wall, c, name)
            axes[row, 0].set_ylabel(f"{split} loss")
    axes[1, 0].set_xlabel("inner steps")
    axes[1, 1].set_xlabel("wall-clock seconds (measured per step in this run)")
    for ax in axes.flat:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{title}: median and 25-75% over held-out tasks x seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_differences(path: str, curves: Curves, reference: str):
    """Writes a PNG histogram of per-task mean-loss differences (baseline - reference).

    Positive values mean the reference optimizer is better (Figure 6c).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for col, split in enumerate(("train", "test")):
        ref = _task_means(curves[reference][col])
        for name, pair in curves.items():
            if name == reference:
                continue
            diff = _task_means(pair[col]) - ref
            axes[col].hist(np.clip(diff[np.isfinite(diff)], -5, 5), bins=20, alpha=0.5, label=name)
        axes[col].axvline(0, color="k", ls="--")
        axes[col].set_title(f"{split}: baseline - {reference} (>0: {reference} better)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    out_dir: str, steps: np.ndarray, curves: Curves, seconds: dict[str, float],
    reference: str, title: str, notes: str = "",
) -> str:
    """Writes results.json, report.md and PNG plots into ``out_dir``; returns the markdown table."""
    os.makedirs(out_dir, exist_ok=True)
    rows = table(curves, seconds, reference)
    md = markdown_table(rows, reference)
    plot_curves(os.path.join(out_dir, "curves.png"), steps, curves, seconds, title)
    plot_differences(os.path.join(out_dir, "differences.png"), curves, reference)
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
    return md
