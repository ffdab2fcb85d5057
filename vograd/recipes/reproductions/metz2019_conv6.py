"""Metz et al. 2019, Figure 7: the headline's learned optimizers on a 6-layer CNN on 28x28 MNIST.

A stage of `metz2019_headline`: its two arms (outer-trained on training loss
and on validation loss, 3 seeds each, on a 2-layer CNN over 14x14
Fashion-MNIST) run untuned on `vograd.tasks.problems.Conv6Family`: six 3x3
convolutions of 32 channels (strides 2, 1, 2, 1, 2, 1), global average pool,
a 10-way head, 46,890 parameters, on the 5,000 MNIST digits of the offline
sources (28x28, every class; tasks differ by their label order). Different
depth, dataset, input size and class count from everything outer training saw.
Against Adam, RMSProp and SGD+momentum, each tuned per task over 11 learning
rates in [1e-4, 10] (the paper's Fig. 7 baselines): train curves of the rate
best on training loss, test curves of the rate best on test loss. Episodes as
long as the outer-training ones (the paper, too, evaluates at its training
horizon).

Sub-claims (each supported when its 95% t-interval over the outer seeds lies
on the claimed side of 0; `judge`):

1. both learned optimizers still reduce the loss: final minus first evaluated
   training loss;
2. the validation-trained one trains faster: its training loss averaged over
   the episode minus the best tuned baseline's on each task;
3. it generalizes better than the train-trained one: final test loss, valid
   minus train arm, paired by seed;
4. it generalizes well: its final test loss minus the best tuned baseline's
   (selected on test loss) on each task.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from vograd.recipes.evaluation import InnerSchedule, log_grid
from vograd.recipes.reproductions import common, confidence

BASELINES = ("adam", "rmsprop", "sgd_momentum")
ARMS = ("train", "valid")

SIZES = {
    "full": {"channels": (32,) * 6, "downsample": 1, "batch_size": 32, "eval_every": 20,
             "eval_batches": 2, "tasks": 4, "inits": 2, "lr_grid": 11, "baselines": BASELINES},
    # CI's size: 4 channels on 14x14 digits, one task; numbers mean nothing.
    "tiny": {"channels": (4,) * 6, "downsample": 2, "batch_size": 8, "eval_every": 10,
             "eval_batches": 1, "tasks": 1, "inits": 1, "lr_grid": 3, "baselines": ("adam",)},
}


def held_out(size: str, steps: int):
    """Returns ``(family, tasks [T], keys [T, S], schedule)`` of the 6-layer-CNN check
    (key 40_000: the same tasks, initialisations and batches for every optimizer)."""
    from vograd.tasks.problems import Conv6Family

    z = SIZES[size]
    if steps % z["eval_every"]:
        raise ValueError(f"the 6-layer-CNN check's {steps} steps must be a multiple of "
                         f"{z['eval_every']}")
    family = Conv6Family("mnist", "all", channels=z["channels"], downsample=z["downsample"],
                         batch_size=z["batch_size"], conv_impl="im2col")
    tasks, keys = common.sample_tasks(family, jax.random.key(40_000), z["tasks"], z["inits"])
    return family, tasks, keys, InnerSchedule(steps, z["eval_every"], z["eval_batches"])


def run(out: Path, size: str, trained: dict, steps: int, plot_path: Path) -> dict:
    """Returns ``{"analysis", "claims", "verdict", "steps", "baselines"}`` for the arms of
    ``trained`` (`metz2019_headline.outer_train`'s result), computing the stages ``out``
    lacks (``learned.npz``, ``baseline_NAME.npz``), and draws the curves at ``plot_path``."""
    out = Path(out)
    held = held_out(size, steps)
    learned = common.stage(out / "learned.npz", lambda: common.arm_curves(trained, ARMS, *held))
    grid = {"learning_rate": log_grid(1e-4, 10.0, SIZES[size]["lr_grid"])}
    tuned = {b: common.stage(out / f"baseline_{b}.npz",
                             lambda b=b: common.tuned_stage(b, grid, steps, *held))
             for b in SIZES[size]["baselines"]}
    analysis = analyse(learned, tuned)
    verdict, claims = judge(analysis)
    plot(plot_path, held[3].steps(), learned, tuned)
    return {"analysis": analysis, "claims": claims, "verdict": verdict, "steps": steps,
            "baselines": list(tuned)}


def analyse(learned: dict, tuned: dict[str, dict]) -> dict:
    """Returns per arm the final losses, the loss reduction, the differences to the best
    tuned baseline per task (CIs over outer seeds) and the paired valid - train test loss."""
    # The best tuned baseline of each task: on training loss averaged over the episode, on
    # the final test loss.
    best_train = np.stack([t["train"].mean((1, 2)) for t in tuned.values()]).min(0)  # [T]
    best_test = np.stack([t["test"][..., -1].mean(1) for t in tuned.values()]).min(0)  # [T]
    f = confidence.mean_interval
    out = {"arms": {}, "baselines": {
        b: {s: float(t[s][..., -1].mean()) for s in ("train", "test")} for b, t in tuned.items()}}
    for arm in ARMS:
        tr, te = learned[f"{arm}_train"], learned[f"{arm}_test"]  # [n, T, S, E]
        out["arms"][arm] = {
            "final_train": f(tr[..., -1].mean((1, 2))),
            "final_test": f(te[..., -1].mean((1, 2))),
            "reduction": f((tr[..., -1] - tr[..., 0]).mean((1, 2))),
            "episode_train_minus_best": f((tr.mean((2, 3)) - best_train[None]).mean(1)),
            "final_test_minus_best": f((te[..., -1].mean(2) - best_test[None]).mean(1)),
        }
    out["valid_minus_train_test"] = confidence.paired_difference(
        learned["train_test"][..., -1].mean((1, 2)), learned["valid_test"][..., -1].mean((1, 2)))
    return out


def judge(a: dict) -> tuple[str, list[dict]]:
    """Returns the verdict (reproduced: all four sub-claims; partly: some; not: none) and
    the sub-claims of the module docstring."""
    below = confidence.below_zero
    fmt = confidence.format_interval
    t, v = a["arms"]["train"], a["arms"]["valid"]
    claims = [
        {"claim": "6-layer CNN: both learned optimizers still reduce the loss (final - first "
                  "training loss; train arm, valid arm)",
         "supported": below(t["reduction"]) and below(v["reduction"]),
         "evidence": f"{fmt(t['reduction'])}; {fmt(v['reduction'])}"},
        {"claim": "6-layer CNN: the validation-trained optimizer trains faster (training loss "
                  "averaged over the episode - best tuned baseline)",
         "supported": below(v["episode_train_minus_best"]),
         "evidence": fmt(v["episode_train_minus_best"], 4)},
        {"claim": "6-layer CNN: it generalizes better than the train-trained one (final test "
                  "loss, valid - train arm, paired by seed)",
         "supported": below(a["valid_minus_train_test"]),
         "evidence": fmt(a["valid_minus_train_test"], 4)},
        {"claim": "6-layer CNN: it generalizes well (final test loss - best tuned baseline)",
         "supported": below(v["final_test_minus_best"]),
         "evidence": fmt(v["final_test_minus_best"], 4)},
    ]
    return confidence.verdict([c["supported"] for c in claims]), claims


def plot(path: Path, steps: np.ndarray, learned: dict, tuned: dict) -> Path | None:
    """Writes Fig. 7's two panels (train and test loss against inner step): each arm's
    geometric mean over outer seeds with its 95% band, each baseline tuned per task."""
    panels = []
    for split in ("train", "test"):
        curves = {f"learned ({arm} objective)": learned[f"{arm}_{split}"].mean((1, 2))
                  for arm in ARMS}
        curves.update({b: t[split].mean((0, 1))[None] for b, t in tuned.items()})
        panels.append((f"6-layer CNN on 28x28 MNIST: {split} loss", steps, curves))
    return common.curves_figure(panels, path, ylabel="loss")


def report_lines(result: dict) -> list[str]:
    """Returns report.md's section for the check."""
    a, fmt = result["analysis"], confidence.format_interval
    lines = ["## Figure 7: the 6-layer CNN on 28x28 MNIST", "",
             f"{result['steps']} steps, final losses (learned: mean [95% CI] over outer seeds; "
             "baselines tuned per task):", "", "| optimizer | train loss | test loss |",
             "|---|---|---|"]
    lines += [f"| learned ({arm} objective) | {fmt(a['arms'][arm]['final_train'])} | "
              f"{fmt(a['arms'][arm]['final_test'])} |" for arm in ARMS]
    lines += [f"| {b} | {v['train']:.3f} | {v['test']:.3f} |" for b, v in a["baselines"].items()]
    lines += ["", "| sub-claim | supported | evidence (95% CI) |", "|---|---|---|"]
    lines += [f"| {c['claim']} | {'yes' if c['supported'] else 'no'} | {c['evidence']} |"
              for c in result["claims"]]
    return lines + ["", f"Figure 7's verdict: **{result['verdict']}**.", "",
                    "![6-layer CNN](conv6.png)", ""]


__all__ = ["ARMS", "BASELINES", "SIZES", "analyse", "held_out", "judge", "report_lines", "run"]
