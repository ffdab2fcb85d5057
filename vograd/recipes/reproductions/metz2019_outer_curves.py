"""Metz et al. 2019, Figure 5: outer-training curves from several initialisations of theta.

Seed ``s`` initialises theta from ``key(s)`` and outer-trains the shared
scaled-down setting (`metz2019_scale`: merged estimator, truncation curriculum,
outer objective on held-out batches) for ``outer_steps`` steps; every
``every`` steps (and at step 0) theta is scored by
`metz2019_scale.held_out_loss`: the mean test loss over a full 200-step
episode on held-out tasks of the test class pool (the paper: the loss after
10k inner steps, averaged over 40 tasks). Tuned Adam on the same tasks is
the reference line. Each evaluated point is kept in ``seed{s}/curve.json``;
training resumes from the run's checkpoint, so an interrupted run loses at most
one segment.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from vograd import plotting
from vograd.recipes import run as runs
from vograd.recipes.reproductions import common, confidence, metz2019_scale, metz2019_training
from vograd.recipes.reproductions.base import Reproduction

# (outer steps, evaluation every) per size.
SCHEDULE = {"tiny": (4, 2), "full": (80, 10)}


def config(size: str):
    """Returns the outer-training config of ``size``: the curriculum spans the whole run."""
    steps, every = SCHEDULE[size]
    c = metz2019_scale.base(size)
    return replace(c, outer_steps=steps, checkpoint_every=every,
                   truncation=replace(c.truncation, num_steps=steps))


def curve(out: Path, size: str, seed: int, progress: bool) -> dict:
    """Returns ``{"steps": [...], "loss": [...], "skipped", "train_seconds"}`` of one seed:
    the held-out score of theta at outer steps ``0, every, 2 every, ...``; evaluated
    points are read back from ``curve.json`` rather than recomputed."""
    c = config(size)
    _, every = SCHEDULE[size]
    run_dir = out / f"seed{seed}"
    path = run_dir / "curve.json"
    points = json.loads(path.read_text())["points"] if path.exists() else {}
    for step in range(0, c.outer_steps + 1, every):
        if str(step) in points:
            continue
        if progress:
            print(f"[metz2019-outer-curves] seed {seed}: outer step {step}", flush=True)
        theta = (metz2019_training.initial_theta(c, seed) if step == 0 else
                 metz2019_training.train(c, run_dir, seed, num_steps=step))
        points[str(step)] = metz2019_scale.finite_or_none(metz2019_scale.held_out_loss(c, theta))
        run_dir.mkdir(parents=True, exist_ok=True)
        common.write_json(path, {"points": points}, indent=2)
    rows = runs.read_metrics(run_dir)
    steps = sorted(int(k) for k in points)
    return {"steps": steps, "loss": [points[str(k)] for k in steps],
            "skipped": int(sum(bool(r["skipped"]) for r in rows)),
            "train_seconds": float(sum(r["step_time"] for r in rows)),
            "outer_loss": [r["loss"] for r in rows]}


def judge(curves: list[dict], adam: float) -> tuple[str, list[dict]]:
    """Returns the verdict and the checked sub-claims.

    - stable: no skipped update and every evaluation finite, on every seed;
    - every init improves: each seed's final score is below its step-0 score and
      within 10% of its own best (no late collapse);
    - consistent across inits: the final scores' coefficient of variation
      (sd / mean over seeds) is under 10%.
    Reproduced: all three; partly: stable and improving but not consistent;
    not reproduced: otherwise. The comparison with tuned Adam is reported, not
    judged (the paper's optimizers were outer-trained ~100x longer).
    """
    finite = all(v is not None for c in curves for v in c["loss"])
    stable = finite and all(c["skipped"] == 0 for c in curves)
    improves = finite and all(c["loss"][-1] < c["loss"][0] and
                              c["loss"][-1] <= 1.1 * min(c["loss"]) for c in curves)
    final = confidence.mean_interval([c["loss"][-1] for c in curves])
    cv = (final["sd"] / final["mean"]) if final["sd"] is not None and final["mean"] else None
    consistent = cv is not None and cv < 0.1
    claims = [
        {"claim": "outer training is stable (no skipped update, no divergence)",
         "supported": stable, "evidence": f"skipped updates per seed {[c['skipped'] for c in curves]}"},
        {"claim": "every initialisation improves and keeps its gains", "supported": improves,
         "evidence": "first -> best -> final: " + "; ".join(
             f"{c['loss'][0]:.3f} -> {min(c['loss']):.3f} -> {c['loss'][-1]:.3f}"
             if finite else "diverged" for c in curves)},
        {"claim": "consistent across initialisations (final CV < 10%)", "supported": consistent,
         "evidence": f"final {confidence.format_interval(final)}, CV "
                     f"{'-' if cv is None else f'{cv:.1%}'}; tuned Adam {adam:.3f}"},
    ]
    verdict = ("reproduced" if stable and improves and consistent else
               "partly" if stable and improves else "not reproduced")
    return verdict, claims


def plot(path: Path, curves: list[dict], adam: float):
    """Writes held-out score against outer step, one line per initialisation, with tuned
    Adam dashed (Figure 5's layout); log y-axis (step 0 can be 10x the rest)."""
    fig = plotting.new_figure(figsize=(11, 4))
    if fig is None:
        return None
    left, right = fig.subplots(1, 2)
    for s, c in enumerate(curves):
        y = np.asarray([np.nan if v is None else v for v in c["loss"]], float)
        left.plot(c["steps"], y, marker="o", label=f"init {s}")
        raw = np.asarray([np.nan if v is None else v for v in c["outer_loss"]], float)
        right.plot(np.arange(raw.size), raw, alpha=0.7, label=f"init {s}")
    left.axhline(adam, color=plotting.color("adam"), ls="--", label="tuned Adam")
    left.set_yscale("log")
    left.set_xlabel("outer step")
    left.set_ylabel("held-out test loss over a 200-step episode")
    left.set_title("Held-out score while outer-training (paper: Fig. 5)")
    left.legend()
    right.set_yscale("log")
    right.set_xlabel("outer step")
    right.set_ylabel("outer loss of the step's window (train-pool tasks)")
    right.set_title("Outer loss per step (jumps: a new 200-step episode starts)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def report(results: dict) -> str:
    """Returns report.md."""
    steps = results["curves"][0]["steps"]
    head = "| init | " + " | ".join(f"step {k}" for k in steps) + " | skipped |"
    lines = REPRODUCTION.report_header(f"vograd reproduce {REPRODUCTION.name} --size "
                                       f"{results['size']} --seeds {results['seeds']}") + [
        "Held-out score (lower is better):", "", head, "|" + "---|" * (len(steps) + 2)]
    for s, c in enumerate(results["curves"]):
        vals = " | ".join("diverged" if v is None else f"{v:.3f}" for v in c["loss"])
        lines.append(f"| {s} | {vals} | {c['skipped']} |")
    per_step = " | ".join(confidence.format_interval(x, 2) for x in results["per_step"])
    lines += [f"| mean [95% CI] | {per_step} | |", "",
              f"Tuned Adam on the same tasks: {results['adam']['score']:.3f} "
              f"(learning rate {results['adam']['learning_rate']:g}).", "",
              *common.verdict_lines(results, "outer_curves.png")]
    return "\n".join(lines)


def run(out_dir: Path, size: str = "full", seeds: int = 3, progress: bool = True) -> dict:
    """Returns results.json's dict, training and evaluating what ``out_dir`` lacks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = [curve(out, size, s, progress) for s in range(seeds)]
    adam = common.json_stage(out / "adam.json", lambda: metz2019_scale.adam_reference(config(size)))
    verdict, claims = judge(curves, adam["score"])
    per_step = [confidence.mean_interval([c["loss"][i] for c in curves])
                for i in range(len(curves[0]["steps"]))]
    results = {"name": REPRODUCTION.name, "size": size, "seeds": seeds, "curves": curves,
               "per_step": per_step, "adam": adam, "claims": claims, "verdict": verdict}
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    plot(out / "outer_curves.png", curves, adam["score"])
    return results


REPRODUCTION = Reproduction(
    name="metz2019-outer-curves",
    paper="Metz et al. 2019, Understanding and correcting pathologies in the training of "
          "learned optimizers",
    figure="Figure 5",
    claim=("With the merged estimator and the truncation curriculum, outer-training is stable "
           "from every random initialisation of theta: the held-out performance after inner "
           "training improves steadily and consistently across initialisations (with some "
           "remaining variability between them)."),
    scale=("Inner problem: 196-16-k MLP on 14x14 Fashion-MNIST, batch 32 (paper: small CNNs); "
           "score after a 200-step episode (paper: 10,000 steps, 50x shorter), mean over the "
           "episode on 8 held-out tasks (paper: 40); 80 outer steps of 4 antithetic pairs "
           "(paper: thousands of steps of 128 samples); curriculum 8 -> 40 steps (paper 50 -> "
           "10,000); only the validation outer objective (the paper also trains on the train "
           "objective); tuned Adam: 5 learning rates."),
    run=run,
)

__all__ = ["REPRODUCTION", "config", "curve", "judge", "run"]
