"""Metz et al. (2020, "Tasks, stability, architecture, and compute"): a hierarchical optimizer.

The recipe: a per-tensor LSTM (64 units) exchanging messages across tensors
and feeding a per-parameter feed-forward network (2 x 32), outer-trained with
Persistent ES over truncated unrolls (the 2020 paper used antithetic ES over
truncations; PES removes the truncation bias) and outer Adam with learning
rate 3e-5 in the paper. The paper trains on thousands of TaskSet tasks; the
presets here use the image MLP and CNN families that run offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vograd.estimators import PersistentES
from vograd.recipes.config import Evaluation, Problem, Truncation
from vograd.recipes.recipe import OneFamilyRecipe, is_first_format, pop_chunk
from vograd.tasks.optimizers import HierarchicalOptimizer


@dataclass(frozen=True)
class Metz2020(OneFamilyRecipe):
    """One training run; the estimator's ``sigma`` is the PES perturbation standard deviation."""

    DESCRIPTION: ClassVar[str] = (
        "Metz et al. 2020: hierarchical (per-tensor LSTM + per-parameter MLP) optimizer, PES")

    problem: Problem = Problem("mlp", "fashion_mnist", hidden=(32, 32), batch_size=128)
    outer: str = "train"  # outer objective: inner training loss (train) or validation loss (valid)
    horizon: int = 10_000  # inner steps per episode
    # the outer-gradient estimator: Persistent ES with num_pairs antithetic pairs
    estimator: PersistentES = PersistentES(num_pairs=64, sigma=0.01)
    # the learned optimizer: per-tensor LSTM (64 units) and per-parameter MLP (2 x 32)
    optimizer: HierarchicalOptimizer = HierarchicalOptimizer()
    truncation: Truncation = Truncation(fixed=50)
    outer_steps: int = 10_000  # outer updates
    outer_lr: float = 3e-5  # outer Adam learning rate
    # clip each outer-gradient element to this magnitude (None: no clipping)
    clip_value: float | None = 0.1
    checkpoint_every: int = 100  # outer steps between checkpoints
    evaluation: Evaluation = Evaluation()

    @classmethod
    def migrate(cls, data: dict) -> dict:
        """Returns a first-format config (``num_pairs``, ``sigma``, ``truncation.chunk``
        fields) in today's; today's unchanged."""
        if not is_first_format(data):
            return data
        d = dict(data)
        d["estimator"] = {"class": "PersistentES", "fields": {
            "num_pairs": d.pop("num_pairs", 64), "sigma": d.pop("sigma", 0.01),
            "chunk": pop_chunk(d)}}
        d["optimizer"] = {"class": "HierarchicalOptimizer", "fields": {}}
        return d

PRESETS: dict[str, Metz2020] = {
    "demo": Metz2020(
        problem=Problem("mlp", "fashion_mnist", hidden=(32,), batch_size=64),
        horizon=200, estimator=PersistentES(num_pairs=4, sigma=0.01),
        truncation=Truncation(fixed=20), outer_steps=100,
        outer_lr=3e-3, checkpoint_every=50,
        evaluation=Evaluation(num_tasks=4, num_seeds=2, inner_steps=200, eval_every=20,
                              eval_batches=2, random_search=0, generalization=False),
    ),
    "small": Metz2020(
        horizon=1_000, estimator=PersistentES(num_pairs=8, sigma=0.01),
        truncation=Truncation(fixed=50), outer_steps=2_000,
        outer_lr=1e-3,
        evaluation=Evaluation(num_tasks=10, num_seeds=2, inner_steps=1_000, eval_every=50,
                              random_search=16, generalization_tasks=2),
    ),
    "paper": Metz2020(),
}
Metz2020.PRESETS = PRESETS


__all__ = ["Metz2020", "PRESETS"]
