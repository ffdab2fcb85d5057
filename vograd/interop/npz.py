"""A learned optimizer's weights and spec in one ``.npz`` file that numpy alone can read.

The file holds one array per leaf of ``theta``, named ``theta/<path>`` (the
leaf's pytree path, e.g. ``theta/w1`` for an `MLPOptimizer`), and a JSON
string ``header``::

    {"format": "vograd-optimizer/1",
     "optimizer": {"class": "MLPOptimizer", "fields": {...}},   # as in the .ckpt headers
     "theta": ["theta/w1", "theta/b1", ...],                      # leaf order
     "metadata": {...}}                                           # how it was made

Reading it needs no vograd, no JAX and no pickle::

    import json, numpy as np
    with np.load("opt.npz", allow_pickle=False) as f:
        header = json.loads(str(f["header"]))
        theta = {name: f[name] for name in header["theta"]}

`load` rebuilds ``(learned_optimizer, theta)`` with vograd, checking every
leaf's shape and dtype against the optimizer's own ``init_theta``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vograd import checkpoint
from vograd.tasks.optimizers.base import LearnedOptimizer, Theta
from vograd.tasks.pretrained import build_optimizer, optimizer_spec

FORMAT = "vograd-optimizer/1"


def _leaf_names(theta: Theta) -> list[str]:
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(theta)[0]]
    names = ["theta/" + (jax.tree_util.keystr(p, simple=True, separator="/") or "leaf")
             for p in paths]
    if len(set(names)) != len(names):  # distinct paths can print alike; fall back to indices
        names = [f"theta/{i:04d}" for i in range(len(names))]
    return names


def save(path: str | os.PathLike, lopt: LearnedOptimizer, theta: Theta,
         metadata: dict[str, Any] | None = None) -> Path:
    """Returns ``path`` after writing ``theta`` and the spec of ``lopt`` to it (atomically)."""
    names = _leaf_names(theta)
    header = {"format": FORMAT, "optimizer": optimizer_spec(lopt), "theta": names,
              "metadata": metadata or {}}
    arrays = dict(zip(names, (np.asarray(x) for x in jax.tree.leaves(theta))))
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: the file name must end in .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
    checkpoint.atomic_write(path, buffer.getvalue())
    return path


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Returns ``(header, {leaf name: array})`` of a file written by `save` (numpy only)."""
    with np.load(path, allow_pickle=False) as f:
        if "header" not in f:
            raise ValueError(f"{path}: not a vograd optimizer file (no header)")
        header = json.loads(str(f["header"]))
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
        missing = [n for n in header["theta"] if n not in f]
        if missing:
            raise ValueError(f"{path}: arrays {missing} listed in the header are missing")
        return header, {n: f[n] for n in header["theta"]}


def load(path: str | os.PathLike) -> tuple[LearnedOptimizer, Theta]:
    """Returns ``(learned_optimizer, theta)`` from a file written by `save`.

    Raises ValueError when a leaf's shape or dtype differs from what the
    optimizer's spec gives (weights of another architecture).
    """
    header, arrays = read(path)
    lopt = build_optimizer(header["optimizer"])
    template = jax.eval_shape(lopt.init_theta, jax.random.key(0))
    names = _leaf_names(template)
    if names != header["theta"]:
        raise ValueError(f"{path}: leaves {header['theta']} do not match {type(lopt).__name__}'s "
                         f"{names}")
    leaves = []
    for name, want in zip(names, jax.tree.leaves(template)):
        got = arrays[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(f"{path}: {name} is {got.dtype}{list(got.shape)}, expected "
                             f"{want.dtype}{list(want.shape)}")
        leaves.append(jax.numpy.asarray(got))
    return lopt, jax.tree.unflatten(jax.tree.structure(template), leaves)


__all__ = ["FORMAT", "load", "read", "save"]
