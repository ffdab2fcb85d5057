"""The default learned optimizer: `AdaptiveMLPOptimizer` outer-trained on a broad task mix.

Where `vograd.recipes.metz2019` reproduces a paper, this recipe aims at an
optimizer that helps on problems it never saw (docs/optimizers.md, "Designed
to generalise"). Outer training: every antithetic sample trains one task of
each family in ``problems`` at once (`vograd.JointSystem`): MLPs of depth 1-3
and widths 16-128 with ReLU, tanh and GELU units on 14x14 and 28x28
Fashion-MNIST, MNIST digits and scikit-learn's 8x8 digits, and a 2-layer CNN;
batch sizes 32-128; every episode's gradients scaled by a factor drawn
log-uniformly in ``grad_scale_range``. Truncated windows of one long episode
(``horizon``) under noise-reuse ES (`vograd.estimators.NoiseReuseES`): one
perturbation per episode, so the estimate is unbiased for the gradient of the
whole episode's mean loss. A window's merged estimate sees only its own 30-64
steps and rewards rates that help within them; trained that way (the second
version) the global rate fell from 1e-2 to 2.7e-3, and validation tasks of
the same families then preferred that optimizer at 1.5x its rate. The
optimizer has no time input, so a window late in a 1,000-step episode is the
same problem as one late in a shorter run: one horizon covers every horizon
up to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import vograd
from vograd.recipes.config import Evaluation, Problem, Truncation
from vograd.recipes.metz2019 import estimator, outer  # the same merged estimator and outer Adam

DESCRIPTION = "AdaptiveMLPOptimizer (Adam + learned bounded correction) on a broad task mix"

# The outer-training distribution (the "train" class pool of each dataset).
TRAIN_PROBLEMS: tuple[Problem, ...] = (
    Problem("mlp", "fashion_mnist", hidden=(32,), batch_size=128, downsample=2),
    Problem("mlp", "mnist", hidden=(32, 32), batch_size=64, downsample=2, activation="tanh"),
    Problem("mlp", "fashion_mnist", hidden=(16,), batch_size=32, activation="gelu"),
    Problem("mlp", "digits", hidden=(128, 64, 32), batch_size=64),
    Problem("conv", "fashion_mnist", batch_size=32, downsample=2, channels=(8, 16),
            strides=(2, 2), conv_impl="im2col"),
)


@dataclass(frozen=True)
class Adaptive:
    """One outer-training run of `AdaptiveMLPOptimizer`.

    ``problems``: the task families trained on together (the first is also
    ``problem``, the family of ``vograd eval``'s in-distribution check).
    ``grad_scale_range``: loss-scale augmentation (`LearnedOptimizerSystem`).
    ``hidden``, ``lr``: the optimizer's MLP width (8: its step costs half of
    16's) and the Adam learning rate it starts from: 1e-2, Adam's best single
    rate on validation tasks of these families (``python -m
    vograd.recipes.validation --adam``; the first runs started at 1e-3 and
    ended no better than Adam at 1e-2 there). ``estimator``: ``"nres"``, 8
    pairs, with outer beta1 0.9 to average the noisier ES estimates.
    ``stagger``: particles start at random steps of their episodes, so each
    outer step mixes early and late windows. The rest as in
    `vograd.recipes.metz2019.Metz2019`.
    """

    problems: tuple[Problem, ...] = TRAIN_PROBLEMS
    # outer objective: inner training loss (train) or validation loss (valid)
    outer: Literal["train", "valid"] = "train"
    horizon: int = 1_000  # inner steps per episode
    num_pairs: int = 8  # antithetic pairs per outer update
    sigma: float = 0.01  # smoothing standard deviation of the perturbations
    # merged (the method), grad (reparameterization only), es (ES only), nres (noise-reuse ES)
    estimator: Literal["merged", "grad", "es", "nres"] = "nres"
    # merge weights per element of theta, or from total variances
    weighting: Literal["per_element", "total"] = "per_element"
    truncation: Truncation = Truncation(fixed=64, min_bucket=64)
    outer_steps: int = 400  # outer updates
    outer_lr: float = 3e-3  # outer Adam learning rate
    outer_b1: float = 0.9  # outer Adam beta1
    clip_value: float = 0.1  # clip each outer-gradient element to [-clip_value, clip_value]
    # draw each episode's loss scale log-uniformly in this range (None: no scaling)
    grad_scale_range: tuple[float, float] | None = (1e-3, 1e3)
    hidden: int = 8  # hidden units of the optimizer's per-parameter MLP
    lr: float = 1e-2  # Adam learning rate the optimizer starts from (it is Adam at init)
    unroll: int = 1  # lax.scan unroll of the inner steps
    stagger: bool = True  # start the particles at random steps of their episodes
    checkpoint_every: int = 25  # outer steps between checkpoints
    evaluation: Evaluation = Evaluation(
        num_tasks=8, num_seeds=3, inner_steps=1_000, eval_every=50, eval_batches=4,
        random_search=0, generalization=False,
    )

    def __post_init__(self):
        if not self.problems:
            raise ValueError("Adaptive: problems must name at least one task family")
        if self.outer not in ("train", "valid"):
            raise ValueError(f"outer must be 'train' or 'valid', got {self.outer!r}")
        if self.estimator not in ("merged", "grad", "es", "nres"):
            raise ValueError(
                f"estimator must be 'merged', 'grad', 'es' or 'nres', got {self.estimator!r}"
            )
        if min(self.outer_steps, self.horizon, self.num_pairs) < 1:
            raise ValueError("outer_steps, horizon and num_pairs must be >= 1")

    @property
    def problem(self) -> Problem:
        """Returns the first training family (the in-distribution evaluation's)."""
        return self.problems[0]

    @property
    def extra_problems(self) -> tuple[Problem, ...]:
        """Returns the other training families (evaluated by ``vograd eval --only extra``)."""
        return self.problems[1:]


CONFIG = Adaptive

PRESETS: dict[str, Adaptive] = {
    # About an hour on 2 idle cores: the optimizer behind vograd.tasks.pretrained's default.
    "default": Adaptive(),
    # Two families, short windows: a couple of minutes (the demo and the tests).
    "demo": Adaptive(
        problems=TRAIN_PROBLEMS[:1] + TRAIN_PROBLEMS[3:4],
        horizon=200,
        num_pairs=2,
        truncation=Truncation(start=20, end=20, num_steps=1, jitter=0.2, min_bucket=32),
        outer_steps=60,
        evaluation=Evaluation(num_tasks=4, num_seeds=2, inner_steps=200, eval_every=20,
                              eval_batches=2, random_search=0, generalization=False),
    ),
}


def learned_optimizer(config: Adaptive):
    """Returns the `AdaptiveMLPOptimizer` of the config's width and starting learning rate."""
    from vograd.tasks.optimizers import AdaptiveMLPOptimizer

    return AdaptiveMLPOptimizer(hidden=config.hidden, lr=config.lr)


def system(config: Adaptive, classes: str = "train"):
    """Returns the `vograd.JointSystem` of one `LearnedOptimizerSystem` per family."""
    from vograd.tasks.system import LearnedOptimizerSystem

    lopt = learned_optimizer(config)
    systems = [
        LearnedOptimizerSystem(lopt, p.family(classes), outer=config.outer, horizon=config.horizon,
                               grad_scale_range=config.grad_scale_range)
        for p in config.problems
    ]
    return systems[0] if len(systems) == 1 else vograd.JointSystem(systems)


def fields() -> tuple[str, ...]:
    """Returns the config's field names (for the CLI's listing)."""
    return tuple(f.name for f in dataclasses.fields(Adaptive))


__all__ = ["Adaptive", "CONFIG", "PRESETS", "TRAIN_PROBLEMS", "estimator", "learned_optimizer",
           "outer", "system"]
