"""Trained learned optimizers shipped with the package.

    >>> import vograd.tasks.pretrained
    >>> opt = vograd.tasks.pretrained.load()  # the default, DEFAULT; an optax.GradientTransformation
    >>> opt = vograd.tasks.pretrained.load("metz2019-small")  # or one by name
    >>> state = opt.init(params)
    >>> updates, state = opt.update(grads, state, params)

Each ``NAME.ckpt`` in this directory is a `vograd.checkpoint` file (JSON header,
equinox leaf serialisation, checksums; no pickle) of the optimizer weights
``theta``. Its header records how to rebuild the optimizer (class and
constructor fields) and how the weights were made (recipe, preset, seed, the
command). Files are written by ``vograd export RUN_DIR NAME`` (`save`).

Names are looked up in two places, in order: the optimizers shipped in this
package (`DIRECTORY`, never written to), then the user's own
(`user_directory`: ``$VOGRAD_DATA_DIR/pretrained`` when that variable is set,
else ``pretrained`` in the platform's per-user data directory, e.g.
``~/.local/share/vograd/pretrained`` on Linux), where ``vograd export`` writes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import jax
import optax

from vograd.tasks.optimizers import (
    AdaptiveMLPOptimizer,
    HierarchicalOptimizer,
    LSTMOptimizer,
    MLPOptimizer,
)
from vograd.tasks.optimizers.base import LearnedOptimizer, Theta
from vograd import checkpoint, spec

DIRECTORY = Path(__file__).parent
SUFFIX = ".ckpt"
# What ``load()`` returns: AdaptiveMLPOptimizer outer-trained by the ``adaptive`` recipe
# (docs/results.md, "The default optimizer"; the command is in its header, ``info``).
DEFAULT = "adaptive"
# The classes a file's spec may name (`vograd.spec`: nothing else is ever built from a file).
CLASSES = {cls.__name__: cls for cls in (
    AdaptiveMLPOptimizer, MLPOptimizer, LSTMOptimizer, HierarchicalOptimizer)}


def user_directory() -> Path:
    """Returns the directory of the user's exported optimizers: ``$VOGRAD_DATA_DIR/pretrained``
    when ``VOGRAD_DATA_DIR`` is set (and not empty), else ``pretrained`` in
    ``platformdirs.user_data_dir("vograd")``. It need not exist yet."""
    root = os.environ.get("VOGRAD_DATA_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_data_dir("vograd")
    return Path(root) / "pretrained"


def _directories(directory: str | os.PathLike | None) -> tuple[Path, ...]:
    return (Path(directory),) if directory is not None else (DIRECTORY, user_directory())


def names(directory: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Returns the names of the optimizers in ``directory`` (default: the shipped ones and
    the user's, `user_directory`), sorted."""
    found = set()
    for d in _directories(directory):
        if d.is_dir():
            found.update(p.name[: -len(SUFFIX)] for p in d.glob(f"*{SUFFIX}"))
    return tuple(sorted(found))


def shipped_names() -> tuple[str, ...]:
    """Returns the names of the optimizers shipped with the package (never replaced)."""
    return names(DIRECTORY)


def path(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Returns the file of ``name``: in ``directory``, or by default the shipped file of
    that name, else the user's; KeyError listing the known names if there is none."""
    if isinstance(name, str) and name and "/" not in name and not name.startswith("."):
        for d in _directories(directory):
            file = d / f"{name}{SUFFIX}"
            if file.is_file():
                return file
    raise KeyError(f"unknown pretrained optimizer {name!r}; known: {list(names(directory))}")


def info(name: str, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """Returns the metadata of ``name``: optimizer spec, recipe, preset, seed, command, step."""
    header = checkpoint.read_header(path(name, directory))
    return {**header.get("metadata", {}), "step": header.get("step")}


def optimizer_spec(lopt: LearnedOptimizer) -> dict[str, Any]:
    """Returns ``{"class": name, "fields": {...}}``, enough to rebuild ``lopt``
    (`vograd.spec.to_spec` over the shipped optimizer classes).

    Every field of a shipped optimizer must be a static, JSON-able setting
    (numbers, strings, booleans, tuples of them): the weights live in ``theta``.
    """
    if type(lopt).__name__ not in CLASSES:
        raise TypeError(f"cannot export a {type(lopt).__name__}; known optimizer classes: "
                        f"{sorted(CLASSES)}")
    return spec.to_spec(lopt, CLASSES)


def build_optimizer(optimizer: dict[str, Any]) -> LearnedOptimizer:
    """Returns the optimizer described by an `optimizer_spec` dict (`vograd.spec.from_spec`:
    ValueError for an unknown class or field)."""
    return spec.from_spec(optimizer, CLASSES)


def save(file: str | os.PathLike, lopt: LearnedOptimizer, theta: Theta, *, step: int,
         metadata: dict[str, Any] | None = None) -> Path:
    """Returns ``file`` after writing ``theta`` with the spec of ``lopt`` and ``metadata``."""
    meta = {**(metadata or {}), "optimizer": optimizer_spec(lopt)}
    return checkpoint.save_checkpoint(file, theta, step=step, metadata=meta)


def _spec_problem(optimizer: Any, num_weights: int) -> str | None:
    """Returns what is wrong with a spec read from a file, or None.

    Besides its shape (`vograd.spec.spec_problem`: a known class, its own field
    names, JSON settings), each integer setting and list length must be at
    most the number of weights the file's fingerprint declares (a size setting
    larger than that cannot describe these weights), which bounds the work of
    tracing its shapes.
    """
    problem = spec.spec_problem(optimizer, CLASSES)
    if problem is not None:
        return problem
    for key, value in optimizer.get("fields", {}).items():
        values = value if isinstance(value, list) else [value]
        sizes = [len(values)] + [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        if max(sizes) > max(num_weights, 1):
            return f"setting {key} = {value!r} is larger than the {num_weights} weights the file holds"
    return None


def load_optimizer(name: str | None = None, directory: str | os.PathLike | None = None
                   ) -> tuple[LearnedOptimizer, Theta]:
    """Returns ``(optimizer, theta)`` of ``name`` (None: `DEFAULT`).

    Raises KeyError for an unknown name and `vograd.checkpoint.CheckpointError`
    for a corrupted or malformed file, a spec that does not build, or weights of
    another architecture. Nothing is allocated from the spec before it is checked:
    the theta shapes it implies (``jax.eval_shape`` of ``init_theta``, no arrays
    built) must equal the leaves the header records, which in turn must fit in
    the file.
    """
    file = path(DEFAULT if name is None else name, directory)
    header = checkpoint.read_header(file)
    optimizer = header["metadata"].get("optimizer")
    if optimizer is None:
        raise checkpoint.CheckpointError(f"{file}: no optimizer spec in the header")
    num_weights = sum(math.prod(shape) for _, shape, _ in header["fingerprint"]["leaves"])
    problem = _spec_problem(optimizer, num_weights)
    if problem is not None:
        raise checkpoint.CheckpointError(f"{file}: {problem}")
    try:
        lopt = build_optimizer(optimizer)
        template = jax.eval_shape(lopt.init_theta, jax.random.key(0))
    except Exception as e:  # a constructor's or init_theta's own check of its settings
        raise checkpoint.CheckpointError(
            f"{file}: the {optimizer['class']} spec does not build: {type(e).__name__}: {e}"
        ) from e
    theta, _ = checkpoint.load_checkpoint(file, template)
    return lopt, theta


def load(name: str | None = None, directory: str | os.PathLike | None = None
         ) -> optax.GradientTransformation:
    """Returns the pretrained optimizer ``name`` (None: `DEFAULT`) as an
    ``optax.GradientTransformation``."""
    lopt, theta = load_optimizer(name, directory)
    return lopt.as_optax(theta)


__all__ = ["CLASSES", "DEFAULT", "build_optimizer", "info", "load", "load_optimizer", "names", "optimizer_spec",
           "path", "save", "shipped_names", "user_directory"]
