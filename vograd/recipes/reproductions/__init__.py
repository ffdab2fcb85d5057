"""Reproductions of paper findings, by name: ``vograd reproduce NAME`` (docs/reproductions.md).

Each reproduction is one module of this package exporting ``REPRODUCTION``, a
`vograd.recipes.reproductions.base.Reproduction`. The registry below lists
them explicitly (name -> module path); a module is imported only when its
reproduction is asked for, so listing them costs no JAX compile.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from vograd.recipes.errors import UnknownNameError, UsageError
from vograd.recipes.reproductions.base import VERDICTS, Reproduction, Size

_MODULES: dict[str, str] = {
    "andrychowicz2016-quadratic": "vograd.recipes.reproductions.andrychowicz2016_quadratic",
    "andrychowicz2016-mnist": "vograd.recipes.reproductions.andrychowicz2016_mnist",
    "metz2020-implicit-regularization":
        "vograd.recipes.reproductions.metz2020_implicit_regularization",
    "metz2020-self-training": "vograd.recipes.reproductions.metz2020_self_training",
    "metz2020-outer-generalization":
        "vograd.recipes.reproductions.metz2020_outer_generalization",
    "metz2020-architectures": "vograd.recipes.reproductions.metz2020_architectures",
    "metz2019-ablations": "vograd.recipes.reproductions.metz2019_ablations",
    "metz2019-outer-curves": "vograd.recipes.reproductions.metz2019_outer_curves",
    "metz2019-bias-variance": "vograd.recipes.reproductions.metz2019_bias_variance",
    "metz2019-headline": "vograd.recipes.reproductions.metz2019_headline",
}


def names() -> tuple[str, ...]:
    """Returns the known reproduction names, sorted."""
    return tuple(sorted(_MODULES))


def get(name: str) -> Reproduction:
    """Returns the `Reproduction` called ``name``; an unknown name is an `UnknownNameError`
    listing the known ones."""
    if name not in _MODULES:
        raise UnknownNameError(
            f"unknown reproduction {name!r}; known reproductions: {', '.join(names())}")
    reproduction = importlib.import_module(_MODULES[name]).REPRODUCTION
    if reproduction.name != name:  # a registry typo would otherwise run the wrong finding
        raise RuntimeError(f"module {_MODULES[name]} exports {reproduction.name!r}, not {name!r}")
    return reproduction


def reproduce(name: str, out_dir: str | Path, size: Size = "full", seeds: int | None = None,
              progress: bool = True) -> dict:
    """Returns the results of running reproduction ``name`` into ``out_dir`` (resumable).

    ``seeds`` defaults to the reproduction's ``min_seeds``. ``out_dir`` records
    the name and size it was started with (``reproduction.json``): resuming with
    another size would mix stages of two scales, so that is a `UsageError`.
    """
    reproduction = get(name)
    seeds = reproduction.min_seeds if seeds is None else seeds
    if size not in ("tiny", "full"):
        raise UsageError(f"--size must be 'tiny' or 'full', got {size!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    marker = out / "reproduction.json"
    started = {"name": name, "size": size}
    if marker.exists():
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            previous = None
        if previous != started:
            raise UsageError(f"{out} holds a run of {previous}, not {started}; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    from vograd.recipes.reproductions import common

    common.write_json(marker, started, indent=None)
    results = reproduction.run(out, size, seeds, progress)
    if results.get("verdict") not in VERDICTS:  # the docs' tables rely on one of these
        raise RuntimeError(f"{name}: verdict {results.get('verdict')!r} not in {VERDICTS}")
    return results


__all__ = ["Reproduction", "get", "names", "reproduce"]
