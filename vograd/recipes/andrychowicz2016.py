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

from vograd.recipes.config import Evaluation, Problem, Truncation, learned_optimizer_system
from vograd.estimators import TruncatedBackprop
from vograd.outer import outer_optimizer

DESCRIPTION = "Andrychowicz et al. 2016: coordinatewise LSTM optimizer, truncated backprop"


@dataclass(frozen=True)
class Andrychowicz2016:
    """One training run: ``num_particles`` optimizee runs of ``horizon`` steps, windows of 20."""

    problem: Problem = Problem("quadratic")
    outer: str = "train"  # outer objective: inner training loss (train) or validation loss (valid)
    horizon: int = 100  # inner steps per optimizee run
    num_particles: int = 8  # optimizee runs per outer update (truncated backprop through each)
    truncation: Truncation = Truncation(fixed=20)
    outer_steps: int = 2_000  # outer updates
    outer_lr: float = 1e-3  # outer Adam learning rate
    # clip each outer-gradient element to this magnitude (None: no clipping)
    clip_value: float | None = None
    preprocess_p: float = 10.0  # the paper's gradient preprocessing constant p
    checkpoint_every: int = 100  # outer steps between checkpoints
    evaluation: Evaluation = Evaluation(
        num_tasks=20, num_seeds=2, inner_steps=100, eval_every=10, eval_batches=1,
        random_search=0, generalization=False,
    )


CONFIG = Andrychowicz2016

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


def learned_optimizer(config: Andrychowicz2016):
    """Returns the coordinatewise LSTM optimizer."""
    from vograd.tasks.optimizers import LSTMOptimizer

    return LSTMOptimizer(preprocess_p=config.preprocess_p)


def system(config: Andrychowicz2016, classes: str = "train"):
    """Returns the `LearnedOptimizerSystem` over the ``classes`` pool."""
    return learned_optimizer_system(
        learned_optimizer(config), config.problem, config.outer, config.horizon, classes
    )


def estimator(config: Andrychowicz2016):
    """Returns truncated backprop over ``num_particles`` persistent optimizee runs."""
    window = min(config.truncation.max_window(), config.horizon)
    return TruncatedBackprop(num_particles=config.num_particles, window=window,
                             chunk=config.truncation.chunk)


def outer(config: Andrychowicz2016):
    """Returns Adam(1e-3) (b1 = 0.9, as in the paper), optionally value-clipped."""
    return outer_optimizer(config.outer_lr, b1=0.9, clip_value=config.clip_value)
