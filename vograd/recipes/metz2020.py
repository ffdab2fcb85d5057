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

from vograd.recipes.config import Evaluation, Problem, Truncation, learned_optimizer_system
from vograd.estimators import PersistentES
from vograd.outer import outer_optimizer

DESCRIPTION = "Metz et al. 2020: hierarchical (per-tensor LSTM + per-parameter MLP) optimizer, PES"


@dataclass(frozen=True)
class Metz2020:
    """One training run; ``sigma`` is the PES perturbation standard deviation."""

    problem: Problem = Problem("mlp", "fashion_mnist", hidden=(32, 32), batch_size=128)
    outer: str = "train"  # outer objective: inner training loss (train) or validation loss (valid)
    horizon: int = 10_000  # inner steps per episode
    num_pairs: int = 64  # antithetic PES pairs per outer update
    sigma: float = 0.01  # PES perturbation standard deviation
    truncation: Truncation = Truncation(fixed=50)
    outer_steps: int = 10_000  # outer updates
    outer_lr: float = 3e-5  # outer Adam learning rate
    # clip each outer-gradient element to this magnitude (None: no clipping)
    clip_value: float | None = 0.1
    checkpoint_every: int = 100  # outer steps between checkpoints
    evaluation: Evaluation = Evaluation()


CONFIG = Metz2020

PRESETS: dict[str, Metz2020] = {
    "demo": Metz2020(
        problem=Problem("mlp", "fashion_mnist", hidden=(32,), batch_size=64),
        horizon=200, num_pairs=4, truncation=Truncation(fixed=20), outer_steps=100,
        outer_lr=3e-3, checkpoint_every=50,
        evaluation=Evaluation(num_tasks=4, num_seeds=2, inner_steps=200, eval_every=20,
                              eval_batches=2, random_search=0, generalization=False),
    ),
    "small": Metz2020(
        horizon=1_000, num_pairs=8, truncation=Truncation(fixed=50), outer_steps=2_000,
        outer_lr=1e-3,
        evaluation=Evaluation(num_tasks=10, num_seeds=2, inner_steps=1_000, eval_every=50,
                              random_search=16, generalization_tasks=2),
    ),
    "paper": Metz2020(),
}


def learned_optimizer(config: Metz2020):
    """Returns the hierarchical optimizer with its default sizes (LSTM 64, MLP 2 x 32)."""
    from vograd.tasks.optimizers import HierarchicalOptimizer

    return HierarchicalOptimizer()


def system(config: Metz2020, classes: str = "train"):
    """Returns the `LearnedOptimizerSystem` over the ``classes`` pool."""
    return learned_optimizer_system(
        learned_optimizer(config), config.problem, config.outer, config.horizon, classes
    )


def estimator(config: Metz2020):
    """Returns Persistent ES with ``num_pairs`` antithetic pairs."""
    window = min(config.truncation.max_window(), config.horizon)
    return PersistentES(num_pairs=config.num_pairs, sigma=config.sigma, window=window,
                        chunk=config.truncation.chunk)


def outer(config: Metz2020):
    """Returns value clipping then Adam(lr, b1 = 0.9)."""
    return outer_optimizer(config.outer_lr, b1=0.9, clip_value=config.clip_value)
