"""Andrychowicz et al. (NeurIPS 2016): a coordinatewise LSTM optimizer trained by truncated backprop.

The recipe: a 2-layer, 20-unit LSTM shared across coordinates, with gradient
preprocessing (``p = 10``; the authors' code uses 5), output scale 0.01; outer
Adam with learning rate 1e-3; optimizee runs of 100 steps unrolled 20 at a
time (plain truncated BPTT, no smoothing); tasks are 10-d quadratics or an
MNIST-like MLP. The outer objective is the mean training loss over the window
(the paper's ``w_t = 1`` for every step).

Where this differs from the paper: the image MLP uses ReLU hidden units (our
MLP family's activation) rather than the paper's 20 sigmoid units; offline,
the images are Fashion-MNIST classes of the training pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vograd.estimators import TruncatedBackprop
from vograd.recipes.config import Evaluation, Problem, Truncation
from vograd.recipes.recipe import OneFamilyRecipe, is_first_format, pop_chunk
from vograd.tasks.optimizers import LSTMOptimizer


@dataclass(frozen=True)
class Andrychowicz2016(OneFamilyRecipe):
    """One training run: the estimator's ``num_particles`` optimizee runs of ``horizon``
    steps, windows of 20; the optimizer's ``preprocess_p`` is the paper's gradient
    preprocessing constant p."""

    DESCRIPTION: ClassVar[str] = (
        "Andrychowicz et al. 2016: coordinatewise LSTM optimizer, truncated backprop")

    problem: Problem = Problem("quadratic")
    outer: str = "train"  # outer objective: inner training loss (train) or validation loss (valid)
    horizon: int = 100  # inner steps per optimizee run
    # the outer-gradient estimator: truncated backprop through num_particles optimizee runs
    estimator: TruncatedBackprop = TruncatedBackprop(num_particles=8)
    # the learned optimizer: the coordinatewise 2-layer LSTM
    optimizer: LSTMOptimizer = LSTMOptimizer(preprocess_p=10.0)
    truncation: Truncation = Truncation(fixed=20)
    outer_steps: int = 2_000  # outer updates
    outer_lr: float = 1e-3  # outer Adam learning rate
    # clip each outer-gradient element to this magnitude (None: no clipping)
    clip_value: float | None = None
    checkpoint_every: int = 100  # outer steps between checkpoints
    evaluation: Evaluation = Evaluation(
        num_tasks=20, num_seeds=2, inner_steps=100, eval_every=10, eval_batches=1,
        random_search=0, generalization=False,
    )

    @classmethod
    def migrate(cls, data: dict) -> dict:
        """Returns a first-format config (``num_particles``, ``preprocess_p``,
        ``truncation.chunk`` fields) in today's; today's unchanged."""
        if not is_first_format(data):
            return data
        d = dict(data)
        d["estimator"] = {"class": "TruncatedBackprop", "fields": {
            "num_particles": d.pop("num_particles", 8), "chunk": pop_chunk(d)}}
        d["optimizer"] = {"class": "LSTMOptimizer", "fields": {
            "preprocess_p": d.pop("preprocess_p", 10.0)}}
        return d

PRESETS: dict[str, Andrychowicz2016] = {
    "demo": Andrychowicz2016(
        outer_steps=150, checkpoint_every=50,
        evaluation=Evaluation(num_tasks=8, num_seeds=2, inner_steps=100, eval_every=10,
                              eval_batches=1, random_search=0, generalization=False),
    ),
    "small": Andrychowicz2016(
        problem=Problem("mlp", "mnist", hidden=(20,), batch_size=128, k=10, class_pools="all"),
        outer_steps=1_000,
        evaluation=Evaluation(num_tasks=4, num_seeds=2, inner_steps=100, eval_every=10,
                              eval_batches=2, random_search=0, generalization=False),
    ),
    "paper": Andrychowicz2016(
        problem=Problem("mlp", "mnist", hidden=(20,), batch_size=128, k=10, class_pools="all"),
        outer_steps=10_000,
    ),
}
Andrychowicz2016.PRESETS = PRESETS


__all__ = ["Andrychowicz2016", "PRESETS"]
