"""Metz et al. 2020, Figure 2(a): sample efficiency of three learned-optimizer architectures.

Three architectures from `vograd.tasks.optimizers`, each with its default
settings, are outer-trained under one budget (`metz2020_outer_training.Setting`:
the same inner family, estimator, windows, clipping, outer optimizer and
number of outer steps):

- ``lstm``: `LSTMOptimizer`, the coordinatewise LSTM of Andrychowicz et al. 2016;
- ``mlp``: `MLPOptimizer`, the per-parameter MLP of Metz et al. 2019;
- ``hierarchical``: `HierarchicalOptimizer`, the per-tensor LSTM feeding a
  per-parameter MLP of Metz et al. 2020 (the paper's proposal).

The outer optimizer is the Metz 2019 one: value clipping at 0.1, then
Adam(3e-3, beta1 = 0.5) (`vograd.outer.outer_optimizer`). Seed ``s`` uses
``key(s)`` in every arm: the same tasks and batches, but each architecture
draws its own initial theta. Sample efficiency is read from the curve of
held-out scores against outer steps: its mean ln score after step 0 (the
log-area under the curve: lower is better sooner) and its final value.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from vograd.recipes.reproductions import common, confidence
from vograd.recipes.reproductions import metz2020_outer_training as ot
from vograd.recipes.reproductions.base import Reproduction, Size

NAME = "metz2020-architectures"
PROPOSED = "hierarchical"
ARMS = ("lstm", "mlp", PROPOSED)
OUTER_LR = 3e-3
OUTER_STEPS = {"tiny": 2, "full": 60}


def architecture(arm: str):
    """Returns the learned optimizer of ``arm`` with its class defaults."""
    from vograd.tasks.optimizers import HierarchicalOptimizer, LSTMOptimizer, MLPOptimizer

    return {"lstm": LSTMOptimizer, "mlp": MLPOptimizer, PROPOSED: HierarchicalOptimizer}[arm]()


@functools.lru_cache(maxsize=None)
def outer_optimizer(clip_value: float):
    """Returns the outer optimizer every arm shares (one object: one compile per arm)."""
    import vograd.outer

    return vograd.outer.outer_optimizer(OUTER_LR, b1=0.5, clip_value=clip_value)


def setting(size: str) -> ot.Setting:
    """Returns the shared setting of ``size``."""
    return ot.setting(size, outer_steps=OUTER_STEPS[size])


def log_area(c: dict) -> float | None:
    """Returns the mean of ``ln score`` over the points after step 0 (lower: better sooner),
    None if any diverged. Logs: one seed's scores can span two orders of magnitude."""
    v = c["score"][1:]
    return None if any(x is None for x in v) else float(np.mean(np.log(v)))


def log_final(c: dict) -> float | None:
    """Returns ``ln`` of the last score, None if it diverged."""
    return None if c["score"][-1] is None else float(np.log(c["score"][-1]))


def judge(paired: dict[str, dict], final_paired: dict[str, dict]) -> tuple[str, list[dict]]:
    """Returns the verdict and its sub-claims: per other architecture, the proposed one is
    more sample efficient when the 95% interval of the paired (by seed) difference
    ``hierarchical - other`` of `log_area` (a mean log ratio) lies below 0.
    Reproduced: against both; partly: against one; not reproduced: neither."""
    claims = []
    for other, d in paired.items():
        better = confidence.excludes_zero(d) and d["mean"] < 0
        worse = confidence.excludes_zero(d) and d["mean"] > 0
        claims.append({"claim": f"{PROPOSED} is more sample efficient than {other}",
                       "supported": bool(better),
                       "evidence": (f"mean ln score difference {confidence.format_interval(d, 3)} "
                                    f"({'better' if better else 'worse' if worse else 'tie'}); "
                                    f"ln final score difference "
                                    f"{confidence.format_interval(final_paired[other], 3)}")})
    return confidence.verdict([c["supported"] for c in claims]), claims


def run(out_dir: Path, size: Size, seeds: int, progress: bool) -> dict:
    """Returns results.json's dict, outer-training and scoring what ``out_dir`` lacks."""
    out = Path(out_dir)
    s = setting(size)
    curves = {arm: [ot.curve(s, architecture(arm), lambda: outer_optimizer(s.clip_value),
                             out / arm / f"seed{k}", k, f"{NAME} {arm}", progress)
                    for k in range(seeds)] for arm in ARMS}
    areas = {a: [log_area(c) for c in cs] for a, cs in curves.items()}
    final = {a: [log_final(c) for c in cs] for a, cs in curves.items()}
    others = [a for a in ARMS if a != PROPOSED]
    paired = {a: confidence.paired_difference(areas[a], areas[PROPOSED]) for a in others}
    final_paired = {a: confidence.paired_difference(final[a], final[PROPOSED]) for a in others}
    verdict, claims = judge(paired, final_paired)
    results = {
        "name": NAME, "size": size, "seeds": seeds, "verdict": verdict,
        "setting": dataclasses.asdict(s), "outer_lr": OUTER_LR, "curves": curves,
        "log_area": {a: confidence.mean_interval(v) for a, v in areas.items()},
        "log_final": {a: confidence.mean_interval(v) for a, v in final.items()},
        "final": {a: confidence.mean_interval([c["score"][-1] for c in cs])
                  for a, cs in curves.items()},
        "initial": {a: confidence.mean_interval([c["score"][0] for c in cs])
                    for a, cs in curves.items()},
        "paired_area": paired, "paired_final": final_paired,
        "num_weights": {a: _num_weights(a) for a in ARMS},
        "train_seconds": {a: confidence.mean_interval([c["train_seconds"] for c in cs])
                          for a, cs in curves.items()},
        "claims": claims,
    }
    common.write_json(out / "results.json", results, indent=2)
    (out / "report.md").write_text(report(results))
    ot.band_figure(out / "outer_curves.png", curves, None,
                   "Outer-training three architectures, same budget (paper: Fig. 2a)")
    return results


def _num_weights(arm: str) -> int:
    """Returns the number of meta-parameters (elements of theta) of ``arm``."""
    import jax

    theta = jax.eval_shape(architecture(arm).init_theta, jax.random.key(0))
    return int(sum(x.size for x in jax.tree.leaves(theta)))


def report(results: dict) -> str:
    """Returns report.md."""
    lines = REPRODUCTION.report_header(
        f"vograd reproduce {NAME} --size {results['size']} --seeds {results['seeds']}")
    steps = results["curves"][PROPOSED][0]["steps"]
    lines += ["Held-out score (test loss over a full episode on fresh tasks; lower is better), "
              "mean over seeds [95% t-interval]:", "",
              "| architecture | weights | " + " | ".join(f"step {k}" for k in steps) +
              " | mean ln score after step 0 | s of outer steps per seed | skipped |",
              "|" + "---|" * (len(steps) + 5)]
    for arm, cs in results["curves"].items():
        per_step = [confidence.mean_interval([c["score"][i] for c in cs])
                    for i in range(len(steps))]
        lines.append(f"| {arm} | {results['num_weights'][arm]} | " +
                     " | ".join(confidence.format_interval(x, 3) for x in per_step) +
                     f" | {confidence.format_interval(results['log_area'][arm], 3)} | "
                     f"{results['train_seconds'][arm]['mean']:.0f} | "
                     f"{sum(c['skipped'] for c in cs)} |")
    lines += ["", *common.verdict_lines(results, "outer_curves.png")]
    return "\n".join(lines)


REPRODUCTION = Reproduction(
    name=NAME,
    paper="Metz et al. 2020, Tasks, stability, architecture, and compute: training more "
          "effective learned optimizers",
    figure="Figure 2(a)",
    claim=("The proposed hierarchical learned optimizer has a greater sample efficiency than "
           "existing architectures: under the same outer-training budget it reaches a lower "
           "outer loss sooner than the coordinatewise LSTM (Andrychowicz et al. 2016) and the "
           "per-parameter MLP (Metz et al. 2019)."),
    scale=("One small inner family (196-16-k ReLU MLP on 14x14 Fashion-MNIST, batch 32) instead "
           "of the paper's thousands of TaskSet tasks; 200-step episodes, fixed 20-step windows, "
           "merged estimator with 2 antithetic pairs (paper: PES-like truncated ES on many "
           "workers), 60 outer steps of Adam(3e-3) (paper: ~10k+), scored every 10 steps on 6 "
           "fresh tasks; architectures at vograd's defaults; 3 outer seeds each."),
    run=run,
)

__all__ = ["ARMS", "REPRODUCTION", "architecture", "judge", "run"]
