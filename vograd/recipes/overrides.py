"""Config overrides: which fields of a config differ from its preset, and as command-line flags.

A run's ``config.json`` holds the full config (what resuming compares) and,
beside it, ``overrides``: ``{"truncation.end": 200, ...}``, the dotted paths
of the fields that differ from the preset (after the ablation), so that the
command that made a run can be written down again (`as_flags`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx

from vograd import spec
from vograd.recipes.recipe import DERIVED_FIELDS


def _json(value: Any) -> Any:
    if isinstance(value, eqx.Module):
        return spec.to_spec(value, {type(value).__name__: type(value)})
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def diff(base: Any, config: Any, prefix: str = "") -> dict[str, Any]:
    """Returns ``{dotted path: JSON value}`` of the leaves of ``config`` that differ from ``base``.

    Nested dataclasses are compared field by field, tuples of dataclasses of
    equal length element by element (``extra_problems.0.batch_size``), an
    estimator or optimizer value of the same class setting by setting
    (``estimator.num_pairs``; its derived ``window`` follows the truncation
    and is no override).
    """
    if base == config:
        return {}
    if (dataclasses.is_dataclass(base) and type(base) is type(config)
            and not isinstance(base, type)):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(base):
            if isinstance(base, eqx.Module) and f.name in DERIVED_FIELDS:
                continue
            out.update(diff(getattr(base, f.name), getattr(config, f.name), f"{prefix}{f.name}."))
        return out
    if (isinstance(base, tuple) and isinstance(config, tuple) and len(base) == len(config)
            and any(dataclasses.is_dataclass(v) for v in base)):
        out = {}
        for i, (a, b) in enumerate(zip(base, config)):
            out.update(diff(a, b, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): _json(config)}


def as_flags(overrides: dict[str, Any]) -> list[str]:
    """Returns the command-line arguments that set ``overrides`` (as `diff` returns them)."""
    args: list[str] = []
    for path, value in overrides.items():
        name = "--" + path.replace("_", "-")
        if isinstance(value, bool):
            head, _, leaf = name[2:].rpartition(".")
            args.append(name if value else "--" + (f"{head}." if head else "") + f"no-{leaf}")
        elif isinstance(value, list):
            args += [name, *(str(v) for v in value)]
        else:
            args += [name, "None" if value is None else str(value)]
    return args
