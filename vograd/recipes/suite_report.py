"""The unseen-task suite's report: markdown tables, JSON and PNG curves.

Tables give, per task, every optimizer's mean training loss over the run
(learned optimizers also as a ratio to tuned Adam), the dead-unit share and the
final weight norm; then win shares with bootstrap intervals, the horizon check
(training loss after the training horizon) and the loss-scale check.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from vograd.recipes.suite_eval import ADAM_TUNED, BASELINES, _score, statistics, to_json

# One colour per baseline in every figure; learned optimizers get shades of one hue.
COLOURS = {"adam (tuned)": "#1f77b4", "adam (global lr)": "#17becf", "adam 1e-3": "#7f7f7f",
           "sgdm (tuned)": "#2ca02c"}
LEARNED_SHADES = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")


def colour(name: str, learned: list[str]) -> str:
    """Returns the fixed colour of ``name`` (a baseline, or the i-th learned optimizer)."""
    if name in COLOURS:
        return COLOURS[name]
    return LEARNED_SHADES[learned.index(name) % len(LEARNED_SHADES)]


def _fmt(x: float) -> str:
    return "diverged" if not np.isfinite(x) else f"{x:.4g}"


def horizon_check(result: dict, learned: list[str], task: str, horizon: int) -> dict:
    """Returns, for ``task``'s learned runs, the mean train loss in the evaluation block
    ending at the training ``horizon``, at the end, and the largest rise after it of the
    seed-mean curve above its running minimum (0: never rises)."""
    entry = result["tasks"].get(task)
    if entry is None:
        return {}
    steps = np.asarray(entry["steps"])
    at = int(np.argmin(np.abs(steps - horizon)))
    out = {}
    for name in (*learned, ADAM_TUNED):
        curve = np.nanmean(entry["optimizers"][name]["train"], axis=0)[at:]
        rise = float(np.max(curve - np.minimum.accumulate(curve)))
        out[name] = {"at_horizon": float(curve[0]), "final": float(curve[-1]), "max_rise": rise}
    return out


def scale_check(result: dict, learned: list[str], names: tuple[str, str, str]) -> dict:
    """Returns, per optimizer, the largest relative difference of the seed-mean train curve
    at each loss scale from the curve at scale 1 (``names``: low, 1, high)."""
    if not all(n in result["tasks"] for n in names):
        return {}
    low, one, high = (result["tasks"][n]["optimizers"] for n in names)
    out = {}
    for name in (*learned, ADAM_TUNED):
        ref = np.mean(one[name]["train"], axis=0)
        out[name] = {n: float(np.max(np.abs(np.mean(o[name]["train"], axis=0) - ref) / ref))
                     for n, o in (("low", low), ("high", high))}
    return out


def markdown(result: dict, stats: dict, learned: list[str]) -> str:
    """Returns the report's tables as markdown."""
    tasks = list(result["tasks"])
    names = [*BASELINES, *learned]
    lines = [f"Adam's single best global learning rate over these tasks: {result['global_lr']:.3g}.",
             "", "Mean training loss over the run (mean over inner seeds); learned optimizers "
             "also as a ratio to tuned Adam's.", "",
             "| task | new here | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for t in tasks:
        opt = result["tasks"][t]["optimizers"]
        adam = _score(opt[ADAM_TUNED]["train"][None])[0]
        cells = []
        for n in names:
            s = _score(opt[n]["train"][None])[0]
            lr = f" ({opt[n]['lr']:.2g})" if opt[n]["lr"] is not None and n != "adam 1e-3" else ""
            cells.append(_fmt(s) + (f" ({s / adam:.2f}x)" if n in learned else lr))
        lines.append(f"| {t} | {result['tasks'][t]['unseen']} | " + " | ".join(cells) + " |")
    lines += ["", "Final test loss; dead ReLU units at the end (share, MLPs with ReLU only); "
              "final weight norm.", "",
              "| task | " + " | ".join(f"{n}: test / dead / norm" for n in (ADAM_TUNED, *learned)) + " |",
              "|---|" + "---|" * (1 + len(learned))]
    for t in tasks:
        opt = result["tasks"][t]["optimizers"]
        cells = []
        for n in (ADAM_TUNED, *learned):
            test = np.mean(opt[n]["test"][:, -1])
            dead = np.nanmean(opt[n]["dead"]) if np.any(np.isfinite(opt[n]["dead"])) else np.nan
            dead_s = "-" if not np.isfinite(dead) else f"{100 * dead:.0f}%"
            cells.append(f"{_fmt(test)} / {dead_s} / {np.mean(opt[n]['norm']):.3g}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "Win share (tasks where the learned optimizer's mean training loss is lower):", "",
              "| learned | " + " | ".join(BASELINES) + " | worst ratio to tuned Adam | collapses |",
              "|---|" + "---|" * (len(BASELINES) + 2)]
    for n in learned:
        w = stats["wins"][n]
        lines.append(f"| {n} | " + " | ".join(f"{100 * w[b]:.0f}%" for b in BASELINES)
                     + f" | {max(stats['ratio_to_tuned_adam'][n]):.2f}x | "
                     + f"{sum(stats['collapses'][n])} of {len(tasks)} |")
    over = next(iter(stats["pooled"].values()))["over"] if stats["pooled"] else []
    if len(over) > 1:
        lines += ["", f"Pooled over {', '.join(over)} (outer seeds): mean win share, 95% "
                  "percentile-bootstrap interval over tasks, spread (max - min) across them.", "",
                  "| baseline | mean | 95% CI | spread |", "|---|---|---|---|"]
        for b in BASELINES:
            p = stats["pooled"][b]
            lines.append(f"| {b} | {100 * p['mean']:.0f}% | {100 * p['ci'][0]:.0f}-"
                         f"{100 * p['ci'][1]:.0f}% | {100 * p['spread']:.0f} points |")
    return "\n".join(lines) + "\n"


def plots(result: dict, learned: list[str], out_dir: str | os.PathLike) -> list[Path]:
    """Returns the PNGs written: train and test loss against steps and wall-clock."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn("matplotlib is not installed: suite plots skipped (pip install "
                      "'vograd[plots]')", stacklevel=2)
        return []
    tasks = list(result["tasks"])
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    written = []
    for split, clock in (("train", False), ("test", False), ("train", True)):
        fig = Figure(figsize=(4 * cols, 3.2 * rows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax, t in zip(axes, tasks):
            entry = result["tasks"][t]
            steps = np.asarray(entry["steps"], float)
            for n in (*BASELINES, *learned):
                o = entry["optimizers"][n]
                curves = np.asarray(o[split], float)
                x = steps * o["seconds_per_step"] if clock else steps
                mid = np.median(curves, axis=0)
                ax.plot(x, mid, color=colour(n, learned), lw=1.4, label=n,
                        ls="--" if n in BASELINES[1:3] else "-")
                if curves.shape[0] > 1:
                    ax.fill_between(x, curves.min(0), curves.max(0), color=colour(n, learned),
                                    alpha=0.12, lw=0)
            ax.set_yscale("log")
            ax.set_title(t, fontsize=9)
            ax.set_xlabel("wall-clock seconds" if clock else "inner step")
            ax.set_ylabel(f"{split} loss")
        for ax in axes[len(tasks):]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7)
        name = f"{split}_{'wallclock' if clock else 'steps'}.png"
        fig.savefig(Path(out_dir) / name, dpi=90)
        written.append(Path(out_dir) / name)
    return written


def write(result: dict, learned: list[str], out_dir: str | os.PathLike, *, horizon: int = 1_000,
          title: str = "Unseen-task suite", pooled: list[str] | None = None) -> str:
    """Returns the markdown report after writing report.md, suite.json and the plots
    (results first, so a missing matplotlib costs only the pictures)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suite_tasks = [t for t in result["tasks"] if "-loss-x" not in t]
    stats = statistics({**result, "tasks": {t: result["tasks"][t] for t in suite_tasks}}, learned,
                       pooled=pooled)
    stats["horizon"] = horizon_check(result, learned, "fashion14-mlp32-10x", horizon)
    stats["loss_scale"] = scale_check(result, learned, ("fashion14-mlp32-loss-x0.001",
                                                        "fashion14-mlp32-loss-x1",
                                                        "fashion14-mlp32-loss-x1000"))
    md = f"# {title}\n\n" + markdown({**result, "tasks": {t: result["tasks"][t] for t in suite_tasks}},
                                     stats, learned)
    if stats["horizon"]:
        md += "\nTraining loss after the training horizon (fashion14-mlp32-10x):\n\n" \
              "| optimizer | at step ~1,000 | at 10,000 | largest rise |\n|---|---|---|---|\n"
        md += "".join(f"| {n} | {h['at_horizon']:.4g} | {h['final']:.4g} | {h['max_rise']:.3g} |\n"
                      for n, h in stats["horizon"].items())
    if stats["loss_scale"]:
        md += "\nLoss scale: largest relative difference of the train curve from scale 1:\n\n" \
              "| optimizer | x1e-3 | x1e3 |\n|---|---|---|\n"
        md += "".join(f"| {n} | {100 * s['low']:.1f}% | {100 * s['high']:.1f}% |\n"
                      for n, s in stats["loss_scale"].items())
    (out / "report.md").write_text(md)
    to_json(result, stats, out / "suite.json")
    plots(result, learned, out)
    return md


__all__ = ["COLOURS", "colour", "horizon_check", "markdown", "plots", "scale_check", "write"]
