"""Typed building blocks shared by the recipes: inner problems, schedules, evaluation.

Recipes are frozen dataclasses, never strings: a preset is a value, an
ablation is ``dataclasses.replace`` of one. ``to_dict`` / ``from_dict`` make
them round-trip through the ``config.json`` of a run directory: nested
dataclasses as objects, tuples as lists, and the equinox values a config
holds (its estimator and learned optimizer) as ``{"class", "fields"}``
(`vograd.spec`), rebuilt only as a class the field's annotation names.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import equinox as eqx

from vograd import spec
from vograd.schedules import Constant, LinearCurriculum, Schedule


@dataclass(frozen=True)
class Problem:
    """An inner-problem family: architecture, data and batch size.

    ``architecture``: ``"mlp"`` (hidden layers ``hidden``), ``"autoencoder"``
    (an MLP autoencoder of the images with hidden layers ``hidden``, squared
    error; labels unused) or ``"conv"`` (the
    Metz 2019 3-layer 32-channel CNN on 32x32x3), ``"conv6"`` (6-layer CNN on
    28x28 MNIST-like data) or ``"quadratic"`` (10-d quadratics). ``k``: classes
    per task (None: 10 when the pool has 10, else 2 to 5). ``class_pools``:
    ``"split"`` trains on the train class pool and evaluates on the disjoint
    test pool; ``"all"`` uses every class for both (held-out tasks then differ
    only by initialisation, label permutation and tint, as in Andrychowicz et
    al.'s MNIST experiments). ``downsample``: average-pool the images by this
    factor (2: 28x28 -> 14x14; for an MLP a 4x smaller first layer, so a 4x
    cheaper per-parameter learned optimizer on a CPU). ``channels``,
    ``strides``, ``conv_impl`` (conv architectures only; None: the family's
    default): the conv stack and its implementation (``vograd.tasks.problems.conv_net``).
    """

    # mlp (hidden layers `hidden`), autoencoder (MLP, squared error), conv (3-layer CNN),
    # conv6 (6-layer CNN on MNIST-like data) or quadratic (10-d)
    architecture: Literal["mlp", "autoencoder", "conv", "conv6", "quadratic"] = "mlp"
    # a vograd.tasks.datasets name, e.g. fashion_mnist, mnist, digits
    dataset: str = "fashion_mnist"
    hidden: tuple[int, ...] = (32, 32)  # MLP hidden-layer widths
    batch_size: int = 128  # inner minibatch size
    # classes per task: an int, a (low, high) range, or None (10 if the pool has 10, else 2-5)
    k: int | tuple[int, int] | None = None
    # split: train on the train class pool, evaluate on the disjoint test pool; all: every class for both
    class_pools: Literal["split", "all"] = "split"
    downsample: int = 1  # average-pool images by this factor (2: 28x28 -> 14x14)
    channels: tuple[int, ...] | None = None  # conv channels per layer (None: the family's default)
    strides: tuple[int, ...] | None = None  # conv strides per layer (None: the family's default)
    # convolution implementation, e.g. im2col (None: the family's default)
    conv_impl: str | None = None
    activation: str = "relu"  # hidden-unit nonlinearity of an MLP: relu, tanh, gelu, sigmoid

    @property
    def eval_options(self) -> dict:
        """Returns the `InnerSchedule` options (``unroll``, ``sequential``) for
        evaluating this problem.

        Convolutional problems with ``lax`` convolutions (the default) run
        their evaluation runs one after another (vmapped convolutions with
        per-run kernels are grouped convolutions,
        ~2x slower on XLA:CPU) and unroll the step scan 5 times (unrolling 10
        was 1.25x faster than rolled at 2.7x the compile time; fully unrolled
        30-step blocks took minutes to compile). ``"im2col"`` convolutions
        are matrix products, which vmap well: those run vectorized.
        """
        if self.architecture in ("conv", "conv6") and self.conv_impl in (None, "lax"):
            return {"unroll": 5, "sequential": True}
        return {"unroll": 1, "sequential": False}

    def family(self, classes: str = "train"):
        """Returns the task family over the ``classes`` pool ("train" or "test")."""
        from vograd.tasks import problems

        if self.class_pools not in ("split", "all"):
            raise ValueError(f"class_pools must be 'split' or 'all', got {self.class_pools!r}")
        if self.class_pools == "all":
            classes = "all"
        conv = self.architecture in ("conv", "conv6")
        given = [n for n in ("channels", "strides", "conv_impl") if getattr(self, n) is not None]
        if self.activation != "relu" and self.architecture not in ("mlp", "autoencoder"):
            raise ValueError(f"activation: for mlp and autoencoder architectures, "
                             f"got {self.architecture!r}")
        if given and not conv:
            raise ValueError(f"{', '.join(given)}: for conv architectures, got {self.architecture!r}")
        if self.architecture == "quadratic":
            if self.downsample != 1:
                raise ValueError("downsample is for image problems, got 'quadratic'")
            return problems.QuadraticFamily(dim=10, noise_std=0.1)
        common = dict(k=self.k, batch_size=self.batch_size, downsample=self.downsample)
        if self.architecture == "mlp":
            return problems.ImageMLPFamily(
                self.dataset, classes, hidden=self.hidden, activation=self.activation, **common
            )
        if self.architecture == "autoencoder":
            return problems.ImageAutoencoderFamily(
                self.dataset, classes, hidden=self.hidden, activation=self.activation, **common
            )
        if conv:
            common.update({n: getattr(self, n) for n in given})
            if self.architecture == "conv":
                return problems.ConvFamily(self.dataset, classes, **common)
            return problems.Conv6Family(self.dataset, classes, **common)
        raise ValueError(
            f"unknown architecture {self.architecture!r}; expected mlp, autoencoder, conv, conv6 "
            "or quadratic"
        )


@dataclass(frozen=True)
class Truncation:
    """The truncation schedule: a linear curriculum, or a fixed window.

    ``fixed`` set: every window has that many steps (the Metz 2019 ablations
    "10 / 100 / 1000 steps per truncation"). Otherwise the window grows from
    ``start`` to ``end`` over ``num_steps`` outer updates with multiplicative
    ``jitter``. ``min_bucket``: the smallest compiled window
    (`vograd.train`): shorter windows run padded to it, saving compilations
    (~20 s each for a learned optimizer on a CPU) at the start of a curriculum
    and at episode ends.
    """

    start: int = 50  # first window length of the linear curriculum (inner steps)
    end: int = 10_000  # last window length of the curriculum
    num_steps: int = 5_000  # outer steps over which the window grows from start to end
    jitter: float = 0.2  # multiplicative jitter of each window: U(1 - jitter, 1 + jitter)
    fixed: int | None = None  # every window this many steps (overrides the curriculum)
    # smallest compiled window: shorter ones run padded to it (fewer compiles)
    min_bucket: int | None = None

    def schedule(self) -> Schedule:
        """Returns the `vograd.schedules.Schedule` this describes."""
        if self.fixed is not None:
            return Constant(self.fixed)
        return LinearCurriculum(self.start, self.end, self.num_steps, self.jitter)

    def max_window(self) -> int:
        return self.fixed if self.fixed is not None else int(self.end * (1 + self.jitter)) + 1


@dataclass(frozen=True)
class Evaluation:
    """The held-out evaluation protocol (Metz 2019, Section 4.4).

    ``num_tasks`` tasks from the test class pool, each trained from
    ``num_seeds`` initialisations for ``inner_steps`` steps. Baselines are
    tuned per task over ``lr_grid`` log-spaced learning rates in
    ``[lr_low, lr_high]``; Adam+Reg+Decay by ``random_search`` random draws
    of its 8 hyperparameters (0 leaves it out). ``generalization`` adds the
    6-layer CNN on MNIST-like data (``generalization_tasks`` tasks, i.e. label
    permutations and tints of MNIST, ``generalization_steps`` inner steps,
    baselines ``generalization_baselines``, no random search: it is costly on
    a CPU). ``pretrained``: shipped optimizers (``vograd.tasks.pretrained`` names)
    evaluated beside the trained one on the same held-out tasks, untuned.
    """

    num_tasks: int = 20  # held-out tasks from the test class pool
    num_seeds: int = 5  # inner initialisations per held-out task
    inner_steps: int = 10_000  # inner training steps per held-out run
    eval_every: int = 100  # inner steps between evaluations (a divisor of inner_steps)
    eval_batches: int = 4  # test batches averaged per evaluation
    # hand-designed optimizers tuned per task: adam, rmsprop, sgd_momentum
    baselines: tuple[str, ...] = ("adam", "rmsprop", "sgd_momentum")
    lr_grid: int = 11  # learning rates in the baselines' log-spaced grid
    lr_low: float = 1e-4  # smallest learning rate of the grid
    lr_high: float = 10.0  # largest learning rate of the grid
    random_search: int = 32  # Adam+Reg+Decay random-search draws (0: leave it out)
    generalization: bool = True  # add the 6-layer CNN on MNIST-like data
    # inner steps of the 6-layer-CNN check (None: inner_steps)
    generalization_steps: int | None = None
    generalization_tasks: int = 4  # tasks of the 6-layer-CNN check
    # baselines of the 6-layer-CNN check
    generalization_baselines: tuple[str, ...] = ("adam", "rmsprop", "sgd_momentum")
    # shipped optimizers (vograd.tasks.pretrained names) evaluated beside the trained one
    pretrained: tuple[str, ...] = ()

    def __post_init__(self):
        if min(self.num_tasks, self.num_seeds, self.inner_steps, self.eval_every) < 1:
            raise ValueError(f"Evaluation: tasks, seeds, steps and eval_every must be >= 1: {self}")
        for name in ("inner_steps", "generalization_steps"):
            steps = getattr(self, name)
            if steps is not None and steps % self.eval_every:
                raise ValueError(
                    f"Evaluation: {name} ({steps}) must be a multiple of eval_every "
                    f"({self.eval_every})"
                )


def value_classes(tp: Any) -> dict[str, type] | None:
    """Returns ``{name: class}`` of a field annotated with equinox value classes (one class,
    or a union of them, optionally with None), else None."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    classes = [a for a in args if a is not type(None)]
    if classes and all(isinstance(a, type) and issubclass(a, eqx.Module) for a in classes):
        return {c.__name__: c for c in classes}
    return None


def _to_json(tp: Any, value: Any) -> Any:
    classes = value_classes(tp)
    if classes is not None and value is not None:
        return spec.to_spec(value, classes)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_to_json(None, v) for v in value]
    return value


def to_dict(config) -> dict:
    """Returns a JSON-able dict of a (nested) recipe dataclass: its estimator and
    optimizer values as ``{"class", "fields"}``."""
    hints = typing.get_type_hints(type(config))
    return {f.name: _to_json(hints.get(f.name), getattr(config, f.name))
            for f in dataclasses.fields(config)}


def _coerce(tp, value):
    """Returns ``value`` converted to the annotated type ``tp`` (dataclasses, tuples, values)."""
    classes = value_classes(tp)
    if classes is not None:
        return None if value is None else spec.from_spec(value, classes)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value)
            except (TypeError, ValueError):
                continue
        return value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return tuple(_coerce(inner, v) if inner else v for v in value)
    if tp is tuple and isinstance(value, list):
        return tuple(value)
    return value


def from_dict(cls, data: dict):
    """Returns ``cls(**data)`` with nested dataclasses and values rebuilt; unknown keys, an
    unknown value class and settings a value refuses are a ValueError naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    fields = {}
    for k, v in data.items():
        try:
            fields[k] = _coerce(hints[k], v)
        except ValueError as err:
            if value_classes(hints[k]) is None:
                raise
            raise ValueError(f"{cls.__name__}.{k}: {err}") from err
    return cls(**fields)


def learned_optimizer_system(lopt, problem: Problem, outer: str, horizon: int, classes: str):
    """Returns the `LearnedOptimizerSystem` training ``lopt`` on ``problem``'s ``classes`` pool."""
    from vograd.tasks.system import LearnedOptimizerSystem

    return LearnedOptimizerSystem(lopt, problem.family(classes), outer=outer, horizon=horizon)
