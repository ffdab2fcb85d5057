"""A disk cache of baseline training curves, keyed by everything they depend on.

Tuned baselines do not depend on the learned optimizer being evaluated, yet
they are most of an evaluation's cost (the 6-layer-CNN check: 33 Adam runs,
about an hour on 2 CPU cores, against minutes for the learned optimizer).
`grid_curves` results are therefore stored under a SHA-256 of:

- the family: its tree structure (class, static settings, dataset name and
  provenance) and the bytes and shapes of its arrays (the images);
- the hyperparameter grid, the tasks and the seed keys (their bytes);
- the optimizer's name, the `InnerSchedule`, and the number of inner steps;
- the versions of jax, jaxlib and optax, the backend, and the source code
  that computes the curves (``vograd/recipes/evaluation.py``,
  ``vograd/tasks/optimizers/baselines.py``, ``vograd/tasks/problems/*.py``).

Anything else that changed the numbers would be a bug in this list; a cache
miss only costs time. Wall-clock times are never cached: the evaluation
measures every optimizer's seconds per step in its own run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from vograd.checkpoint import atomic_write

_ROOT = Path(__file__).resolve().parent.parent.parent
_SOURCES = ("vograd/recipes/evaluation.py", "vograd/tasks/optimizers/baselines.py", "vograd/tasks/problems")


def default_directory() -> Path:
    """Returns ``$VOGRAD_CACHE_DIR/baselines``, default ``~/.cache/vograd/baselines``."""
    root = os.environ.get("VOGRAD_CACHE_DIR") or Path.home() / ".cache" / "vograd"
    return Path(root) / "baselines"


@functools.cache  # the source does not change within a process
def _code_digest() -> str:
    h = hashlib.sha256()
    for entry in _SOURCES:
        path = _ROOT / entry
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for file in files:
            h.update(str(file.relative_to(_ROOT)).encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def _update_with_tree(h, tree: Any) -> None:
    """Feeds the structure and every leaf's dtype, shape and bytes of ``tree`` to ``h``."""
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for leaf in leaves:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.asarray(leaf)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def key(name: str, family, grid, tasks, keys, schedule, num_steps: int) -> str:
    """Returns the hex digest identifying ``grid_curves`` of optimizer ``name`` on this input."""
    import jaxlib
    import optax

    h = hashlib.sha256()
    versions = (jax.__version__, jaxlib.__version__, optax.__version__, jax.default_backend())
    h.update(repr((name, num_steps, schedule, versions, _code_digest())).encode())
    for tree in (family, grid, tasks, keys):
        _update_with_tree(h, tree)
    return h.hexdigest()


def load_arrays(directory: str | os.PathLike, digest: str,
                names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Returns the cached arrays ``names`` of entry ``digest``, or None (missing or unreadable
    entry; never a pickle)."""
    path = Path(directory) / f"{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {n: data[n] for n in names}
    except (OSError, KeyError, ValueError):
        return None


def save_arrays(directory: str | os.PathLike, digest: str, arrays: dict[str, np.ndarray]) -> Path:
    """Returns the file written atomically with ``arrays`` under entry ``digest``."""
    path = Path(directory) / f"{digest}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())
    return path


def cached(directory: str | os.PathLike | None, digest: str, names: tuple[str, ...],
           compute) -> tuple[dict[str, np.ndarray], bool]:
    """Returns ``(arrays, hit)``: entry ``digest``'s arrays ``names`` from ``directory`` when
    it holds them (``hit``), else ``compute()``'s (a dict of those names), saved there first.
    ``directory`` None: always computed, nothing read or written."""
    if directory is not None:
        arrays = load_arrays(directory, digest, names)
        if arrays is not None:
            return arrays, True
    arrays = {n: np.asarray(a) for n, a in compute().items()}
    if directory is not None:
        save_arrays(directory, digest, arrays)
    return arrays, False


def file_digest(*paths: str | os.PathLike) -> str:
    """Returns a SHA-256 of the files' bytes and of the learned optimizers' source code
    (``vograd/tasks/optimizers``): what a learned optimizer's curves depend on beyond `key`'s."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
    for file in sorted((_ROOT / "vograd/tasks/optimizers").glob("*.py")):
        h.update(file.read_bytes())
    return h.hexdigest()
