"""Checks of user input before any work: seeds, numeric config fields, run directories, names.

Every check raises `vograd.recipes.errors.UsageError` with a message naming
the flag (``--truncation.start``, ``--seed``, ``--out``) and what it accepts.

Seeds: integers in ``[0, 2**32)`` (``jax.random.key`` keeps 32 bits of its
seed for the default PRNG, so 0 and 2**32 would be the same key).

Numeric config fields are checked by name, wherever they sit in a config
(``horizon``, ``truncation.start``, ``problem.batch_size``,
``extra_problems.0.hidden``): counts and sizes >= 1, rates and scales
finite and > 0, ``jitter`` and ``outer_b1`` in [0, 1), ``k`` >= 2. A field
no rule names must still be finite (floats) or >= 0 (integers).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from vograd.recipes.errors import UsageError

SEED_LIMIT = 2**32

_AT_LEAST_1 = frozenset({
    "horizon", "num_pairs", "num_particles", "outer_steps", "checkpoint_every", "unroll",
    "batch_size", "downsample", "hidden", "channels", "strides",
    "start", "end", "num_steps", "fixed", "chunk", "min_bucket",
    "num_tasks", "num_seeds", "inner_steps", "eval_every", "eval_batches", "lr_grid",
    "generalization_steps", "generalization_tasks",
})
_POSITIVE = frozenset({
    "sigma", "outer_lr", "clip_value", "step_mult", "preprocess_p", "lr", "lr_low", "lr_high",
    "grad_scale_range",
})
_UNIT = frozenset({"jitter", "outer_b1"})

Rule = tuple[Callable[[Any], bool], str]


def _rule(name: str, value: Any) -> Rule:
    if name == "k":
        return (lambda v: isinstance(v, int) and v >= 2), "an integer >= 2"
    if name in _AT_LEAST_1:
        return (lambda v: isinstance(v, int) and v >= 1), "an integer >= 1"
    if name in _POSITIVE:
        return (lambda v: math.isfinite(v) and v > 0), "a finite number > 0"
    if name in _UNIT:
        return (lambda v: math.isfinite(v) and 0 <= v < 1), "a number in [0, 1)"
    if isinstance(value, int):
        return (lambda v: v >= 0), "an integer >= 0"
    return (lambda v: math.isfinite(v)), "a finite number"


def flag(path: str) -> str:
    """Returns the command-line flag of a dotted config path (``truncation.min_bucket``
    -> ``--truncation.min-bucket``)."""
    return "--" + path.replace("_", "-")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
    elif isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}.{i}")
    else:
        yield path, value


def _numbers(value: Any) -> list[Any] | None:
    """Returns the numbers of a numeric leaf (a number or a tuple of them), else None."""
    items = value if isinstance(value, tuple) else (value,)
    if items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return list(items)
    return None


def check_config(config: Any) -> None:
    """Raises `UsageError` naming every numeric field of ``config`` out of its range."""
    problems = []
    for path, value in _leaves(config, ""):
        numbers = _numbers(value)
        if numbers is None:
            continue
        ok, accepted = _rule(path.rsplit(".", 1)[-1], numbers[0])
        if not all(ok(v) for v in numbers):
            problems.append(f"{flag(path)} must be {accepted}, got {value!r}")
        elif isinstance(value, tuple) and path.rsplit(".", 1)[-1] in ("k", "grad_scale_range"):
            if len(value) != 2 or value[0] > value[1]:
                problems.append(f"{flag(path)} must be a range (low, high) with low <= high, "
                                f"got {value!r}")
    leaves = dict(_leaves(config, ""))
    for path, low in leaves.items():
        high_path = path[: -len("lr_low")] + "lr_high"
        if path.endswith("lr_low") and isinstance(low, float) and high_path in leaves:
            if not low < leaves[high_path]:
                problems.append(f"{flag(path)} ({low}) must be below {flag(high_path)} "
                                f"({leaves[high_path]})")
    if problems:
        raise UsageError("; ".join(problems))


def check_seed(seed: Any, name: str = "--seed") -> int:
    """Returns ``seed`` if it is an integer in ``[0, 2**32)``; else `UsageError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{name} must be an integer in [0, 2**32) = [0, {SEED_LIMIT}), got {seed!r}")
    return seed


def check_count(value: Any, name: str) -> int:
    """Returns ``value`` if it is an integer >= 1; else `UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def is_run(directory: str | os.PathLike) -> bool:
    """Returns whether ``directory`` holds a vograd run (a ``config.json`` with a recipe and config)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and isinstance(record.get("recipe"), str) and isinstance(
        record.get("config"), dict)


def _nonempty_path(out: str | os.PathLike, name: str) -> Path:
    text = os.fspath(out)
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{name} must name a directory, got {text!r}")
    return Path(text)


def _listing(path: Path, show: int = 4) -> str:
    entries = sorted(p.name for p in path.iterdir())
    more = f", ... ({len(entries)} entries)" if len(entries) > show else ""
    return ", ".join(entries[:show]) + more


def check_run_dir(out: str | os.PathLike, name: str = "--out") -> Path:
    """Returns ``out`` as a path if it is new, an empty directory or a vograd run.

    Anything else (a file, or a directory with other files in it) is a
    `UsageError`: a run never writes over files it did not make.
    """
    path = _nonempty_path(out, name)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{name} {str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not is_run(path):
        raise UsageError(
            f"{name} {str(path)!r} is a directory that is not a vograd run (it holds "
            f"{_listing(path)}); use a new or empty directory, or an existing run to resume it"
        )
    return path


def check_study_dir(out: str | os.PathLike, ablations: list[str], name: str = "--out") -> Path:
    """Returns ``out`` if it is new, empty or an ablation study's directory (only
    ``ablations.json``, ``ablations.png`` and one folder per ablation in it)."""
    path = _nonempty_path(out, name)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{name} {str(path)!r} exists and is not a directory")
    if path.is_dir():
        own = {"ablations.json", "ablations.png"}
        other = [p.name for p in path.iterdir()
                 if not (p.name in own or (p.is_dir() and p.name in ablations))]
        if other:
            raise UsageError(
                f"{name} {str(path)!r} is a directory that is not an ablation study (it holds "
                f"{', '.join(sorted(other)[:4])}); use a new or empty directory"
            )
    return path


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    """Returns ``name`` if it can name a pretrained optimizer: 1-100 characters of
    letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"invalid pretrained name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
