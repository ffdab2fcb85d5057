"""The unseen-task suite: problems of types absent from the `adaptive` recipe's outer training.

Each `SuiteTask` names what makes it new relative to `vograd.recipes.adaptive.TRAIN_PROBLEMS`
(MLPs of depth 1-3, widths 16-128, ReLU/tanh/GELU, 2-5-class tasks from the train
class pools of 14x14 Fashion-MNIST and MNIST, 28x28 Fashion-MNIST at width 16 and 8x8
digits; a 2-layer CNN on 14x14 Fashion-MNIST; 1,000-step episodes; classification by
cross-entropy). `LOSS_SCALES` are the loss-scale invariance check, kept apart from the
win-share suite because outer training augments over that range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vograd.tasks.problems.base import TaskFamily


@dataclass(frozen=True)
class SuiteTask:
    """One evaluation problem: a family (built on demand), its horizon and what is new.

    ``loss_scale``: the loss the optimizers see is ``loss_scale * loss``; reported
    curves are divided by it again. ``draw``: the name the task and the inner seeds are
    drawn from (default ``name``); tasks that share it train the same problem from the
    same initialisations on the same batches (the loss-scale check). ``unroll``/``sequential``: the evaluation scan's
    options (`vograd.recipes.evaluation.InnerSchedule`).
    """

    name: str
    build: Callable[[], TaskFamily]
    num_steps: int
    eval_every: int
    unseen: str
    loss_scale: float = 1.0
    sequential: bool = False
    draw: str | None = None


def _mlp(dataset, hidden, *, activation="relu", downsample=1, batch_size=128, classes="all", k=10):
    from vograd.tasks.problems import ImageMLPFamily

    return lambda: ImageMLPFamily(dataset, classes, k=k, hidden=hidden, activation=activation,
                                  downsample=downsample, batch_size=batch_size)


def _in_distribution_mlp():
    # The first training family, but on the disjoint test class pool.
    return _mlp("fashion_mnist", (32,), downsample=2, classes="test", k=None)


def _cnn3():
    from vograd.tasks.problems import ConvFamily

    return ConvFamily("mnist", "all", k=10, channels=(16, 32, 32), strides=(2, 2, 2),
                      conv_impl="im2col", batch_size=64, downsample=2)


def _tabular(dataset, hidden, activation):
    from vograd.tasks.problems import TabularMLPFamily

    return lambda: TabularMLPFamily(dataset, hidden=hidden, batch_size=32, activation=activation)


def _autoencoder():
    from vograd.tasks.problems import ImageAutoencoderFamily

    return ImageAutoencoderFamily("fashion_mnist", "all", hidden=(32,), downsample=2,
                                  batch_size=128)


SUITE: tuple[SuiteTask, ...] = (
    SuiteTask("fashion28-mlp128", _mlp("fashion_mnist", (128,)), 1_000, 50,
              "784-128-10 ReLU MLP: all 10 classes, width 128 at 28x28"),
    SuiteTask("mnist-mlp4x32-sigmoid", _mlp("mnist", (32, 32, 32, 32), activation="sigmoid",
                                            downsample=2), 1_000, 50,
              "depth 4, sigmoid units, 10 classes"),
    SuiteTask("mnist28-logreg", _mlp("mnist", ()), 1_000, 50,
              "no hidden layer (convex softmax regression) on 28x28 MNIST"),
    SuiteTask("mnist-cnn3", _cnn3, 1_000, 50, "3-layer CNN (16/32/32 channels) on MNIST"),
    SuiteTask("wine-mlp", _tabular("wine", (64, 64), "relu"), 1_000, 50,
              "tabular data (13 standardised features, 3 classes)"),
    SuiteTask("breast-cancer-mlp-gelu", _tabular("breast_cancer", (32,), "gelu"), 1_000, 50,
              "tabular data (30 features, 2 classes)"),
    SuiteTask("fashion-autoencoder", _autoencoder, 1_000, 50,
              "regression: 196-32-196 autoencoder, squared error"),
    SuiteTask("fashion14-mlp32-10x", _in_distribution_mlp(), 10_000, 500,
              "10x the training horizon (10,000 steps), test class pool"),
)

LOSS_SCALES: tuple[SuiteTask, ...] = tuple(
    SuiteTask(f"fashion14-mlp32-loss-x{scale:g}", _in_distribution_mlp(), 1_000, 50,
              f"loss multiplied by {scale:g}", loss_scale=scale, draw="fashion14-mlp32-loss")
    for scale in (1e-3, 1.0, 1e3)
)


def by_name(names: str | None, pool: tuple[SuiteTask, ...] = SUITE + LOSS_SCALES) -> tuple[SuiteTask, ...]:
    """Returns the suite tasks named in the comma-separated ``names`` (None: the whole `SUITE`
    and the `LOSS_SCALES` check)."""
    if names is None:
        return SUITE + LOSS_SCALES
    known = {t.name: t for t in pool}
    picked = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in picked if n not in known]
    if unknown or not picked:
        raise KeyError(f"unknown suite tasks {unknown or names!r}; known: {', '.join(known)}")
    return tuple(known[n] for n in picked)


__all__ = ["LOSS_SCALES", "SUITE", "SuiteTask", "by_name"]
