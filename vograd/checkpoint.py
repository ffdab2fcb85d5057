"""Atomic, code-free checkpoints of pytrees, verified against a template.

File layout (format version 1), every byte covered by a checksum::

    b"VOGRADCK"                 8 bytes magic
    header length               8 bytes, little-endian uint64
    sha256(header)              32 bytes
    header                      UTF-8 JSON: format_version, step, payload_bytes,
                                payload_sha256, fingerprint {treedef, leaves},
                                metadata
    payload                     eqx.tree_serialise_leaves bytes (numpy .npy
                                records, one per leaf; no pickle)

Loading needs a *template* pytree of the same structure (for example a fresh
``init``); the header's fingerprint (every leaf's path, shape and dtype, plus
the treedef string) is compared with the template's first, so a checkpoint of
another architecture fails with a message naming the first differing leaf.
Nothing in the file is executed or unpickled on load.

Typed PRNG keys are stored as ``jax.random.key_data`` and re-wrapped with the
template's key implementation.

Writes are atomic: the bytes go to a temporary file in the same directory,
which is fsynced and then ``os.replace``-d over the final name (and the
directory fsynced), so a reader sees either the old or the new complete file,
never a partial one, even if the writer is killed with SIGKILL mid-write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

FORMAT_VERSION = 1
MAGIC = b"VOGRADCK"
_PREFIX = struct.Struct("<8sQ32s")
_NAME = re.compile(r"^checkpoint_(\d{9})\.vograd$")
_TMP_MARK = ".tmp-"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupted, or of another structure."""


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _describe(x: Any) -> tuple[list[int], str]:
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return [int(d) for d in x.shape], str(x.dtype)
    return [], f"py:{type(x).__name__}"


def _scrub(treedef_str: str) -> str:
    # Static fields can hold functions whose repr carries a memory address.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", treedef_str)


def fingerprint(tree: Any) -> dict:
    """Returns ``{"treedef": str, "leaves": [[path, shape, dtype], ...]}``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return {
        "treedef": _scrub(str(treedef)),
        "leaves": [[jax.tree_util.keystr(p), *_describe(x)] for p, x in leaves],
    }


def _fmt(shape: list[int], dtype: str) -> str:
    return f"{dtype}[{','.join(map(str, shape))}]"


def _mismatch(found: dict, expected: dict, show: int = 4) -> str | None:
    """Returns a message naming the differing leaves, or None when equal."""
    fl, el = found["leaves"], expected["leaves"]
    if [f[0] for f in fl] != [e[0] for e in el]:
        f_paths, e_paths = {f[0] for f in fl}, {e[0] for e in el}

        def listing(leaves, others):
            only = [f"{x[0]} {_fmt(*x[1:])}" for x in leaves if x[0] not in others]
            more = f" (and {len(only) - show} more)" if len(only) > show else ""
            return ", ".join(only[:show]) + more if only else "none"

        return (
            f"the checkpoint has {len(fl)} leaves, the template {len(el)}; "
            f"only in the checkpoint: {listing(fl, e_paths)}; "
            f"only in the template: {listing(el, f_paths)}"
        )
    diffs = [
        f"leaf {e[0]}: the checkpoint has {_fmt(*f[1:])}, the template expects {_fmt(*e[1:])}"
        for f, e in zip(fl, el)
        if f[1:] != e[1:]
    ]
    if diffs:
        more = f" (and {len(diffs) - show} more)" if len(diffs) > show else ""
        return f"{len(diffs)} leaves differ: " + "; ".join(diffs[:show]) + more
    if found["treedef"] != expected["treedef"]:
        a, b = found["treedef"], expected["treedef"]
        i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        lo = max(0, i - 60)
        return (
            "tree structure differs (same leaves): checkpoint "
            f"...{a[lo:i + 60]}... vs template ...{b[lo:i + 60]}..."
        )
    return None


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _fsync(fd: int) -> None:
    os.fsync(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: temp file, fsync, ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            _fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def encode(tree: Any, *, step: int, metadata: dict | None = None) -> bytes:
    """Returns the checkpoint bytes of ``tree`` (see the module docstring)."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, _keys_to_data(tree))
    payload = buf.getvalue()
    header = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "fingerprint": fingerprint(tree),
        "metadata": metadata or {},
    }
    head = json.dumps(header, sort_keys=True).encode()
    prefix = _PREFIX.pack(MAGIC, len(head), hashlib.sha256(head).digest())
    return prefix + head + payload


def _split(data: bytes, name: str) -> tuple[dict, bytes]:
    if len(data) < _PREFIX.size:
        raise CheckpointError(
            f"{name}: truncated: {len(data)} bytes, shorter than the {_PREFIX.size}-byte prefix"
        )
    magic, head_len, head_sha = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{name}: not a vograd checkpoint (bad magic bytes {magic!r})")
    head = data[_PREFIX.size : _PREFIX.size + head_len]
    if len(head) != head_len:
        raise CheckpointError(
            f"{name}: truncated: header needs {head_len} bytes, file has {len(head)}"
        )
    if hashlib.sha256(head).digest() != head_sha:
        raise CheckpointError(f"{name}: corrupted: header checksum mismatch")
    header = json.loads(head)
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: format version {header.get('format_version')!r} is not "
            f"the supported version {FORMAT_VERSION}"
        )
    payload = data[_PREFIX.size + head_len :]
    if len(payload) != header["payload_bytes"]:
        raise CheckpointError(
            f"{name}: truncated: payload has {len(payload)} bytes, "
            f"the header says {header['payload_bytes']}"
        )
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CheckpointError(f"{name}: corrupted: payload checksum mismatch")
    return header, payload


def decode(data: bytes, template: Any, *, name: str = "checkpoint") -> tuple[Any, dict]:
    """Returns ``(tree, header)`` decoded from checkpoint bytes, shaped like ``template``.

    Raises `CheckpointError` naming the problem: truncation, corruption
    (checksum), a foreign file, or a structure mismatch (the first differing
    leaf with its shape and dtype).
    """
    header, payload = _split(data, name)
    problem = _mismatch(header["fingerprint"], fingerprint(template))
    if problem is not None:
        raise CheckpointError(f"{name}: structure mismatch: {problem}")
    try:
        loaded = eqx.tree_deserialise_leaves(io.BytesIO(payload), _keys_to_data(template))
    except Exception as e:  # checksums passed: a forged or foreign payload
        causes, c = [], e
        while c is not None:
            causes.append(f"{type(c).__name__}: {c}")
            c = c.__cause__ or c.__context__
        raise CheckpointError(f"{name}: payload does not decode: {' <- '.join(causes)}") from e

    def rewrap(t, x):
        if _is_key(t):
            return jax.random.wrap_key_data(x, impl=jax.random.key_impl(t))
        return x

    return jax.tree.map(rewrap, template, loaded), header


def save_checkpoint(
    path: str | os.PathLike, tree: Any, *, step: int, metadata: dict | None = None
) -> Path:
    """Returns ``path`` after writing ``tree`` there atomically."""
    path = Path(path)
    atomic_write(path, encode(tree, step=step, metadata=metadata))
    return path


def read_header(path: str | os.PathLike) -> dict:
    """Returns a verified checkpoint's JSON header (checksums checked)."""
    path = Path(path)
    return _split(path.read_bytes(), str(path))[0]


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """Returns ``(tree, header)`` loaded from ``path``; see `decode` for errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    return decode(path.read_bytes(), template, name=str(path))


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Returns the file name of the checkpoint taken after ``step`` outer steps."""
    return Path(directory) / f"checkpoint_{int(step):09d}.vograd"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Returns ``[(step, path), ...]`` of the finished checkpoints, oldest first.

    Temporary files of interrupted writes are never listed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Returns the newest finished checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def save_to_directory(
    directory: str | os.PathLike,
    tree: Any,
    *,
    step: int,
    metadata: dict | None = None,
    keep: int | None = 2,
) -> Path:
    """Returns the path of a new checkpoint for ``step`` in ``directory``.

    Afterwards only the newest ``keep`` checkpoints remain (None keeps all);
    the new file is complete before any old one is deleted, so a kill at any
    point leaves at least one complete checkpoint. Stale temporary files from
    killed writers are removed.
    """
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be an int >= 1 or None, got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(checkpoint_path(directory, step), tree, step=step, metadata=metadata)
    if keep is not None:
        for _, old in list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    remove_stale_temporaries(directory)
    return path


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Returns how many temporary files of killed writers were removed.

    Only files named like this module's temporaries whose writer process is
    gone (or is this process) are removed.
    """
    removed = 0
    for p in Path(directory).glob(f".checkpoint_*{_TMP_MARK}*"):
        pid = p.name.rsplit(_TMP_MARK, 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

