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
``init``, or ``jax.eval_shape`` of it); the header's fingerprint (every leaf's
path, shape and dtype, plus the treedef string) is compared with the
template's first, so a checkpoint of another architecture fails with a message
naming the first differing leaf. Nothing in the file is executed or unpickled
on load, and nothing is allocated from it before it is validated: the header
is parsed and checked field by field (`vograd.checkpoint_header`), its sizes
against the file's, the payload's size against the template's, its checksum
in chunks, and each leaf's record against the template's dtype and shape
before its data is read (`vograd.checkpoint_records`). Every problem raises
`CheckpointError`.

Checkpoints in a directory are trusted by the step recorded in their header,
not by their file name (`verified_checkpoints`).

Typed PRNG keys are stored as ``jax.random.key_data`` and re-wrapped with the
template's key implementation.

Writes are atomic: the bytes go to a new temporary file in the same directory
(created exclusively, never through a symlink, under an unpredictable name),
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
import secrets
import struct
from pathlib import Path
from typing import Any, BinaryIO

import equinox as eqx
import jax

from vograd import checkpoint_header, checkpoint_records
from vograd.checkpoint_header import FORMAT_VERSION, MAX_HEADER_BYTES, CheckpointError

MAGIC = b"VOGRADCK"
_PREFIX = struct.Struct("<8sQ32s")
_TMP_MARK = ".tmp-"
_CHUNK = 1 << 20


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


def _key_data(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.eval_shape(jax.random.key_data, x)
    return jax.random.key_data(x)


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda x: _key_data(x) if _is_key(x) else x, tree)


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


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Returns ``(fd, name)`` of a new temporary file beside ``path``.

    The name ``.NAME.tmp-PID-RANDOM`` has 64 random bits; the file is created
    with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a planted file or symlink of
    that name is never written through (permissions: 0o666 less the umask).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: new temporary file, fsync, ``os.replace``.

    ``os.replace`` renames over ``path`` itself: a symlink at ``path`` is
    replaced, never followed.
    """
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        with open(fd, "wb") as f:
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
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(
            f"the checkpoint header would be {len(head)} bytes, over the "
            f"{MAX_HEADER_BYTES}-byte limit: too many leaves "
            f"({len(header['fingerprint']['leaves'])}) or too much metadata"
        )
    prefix = _PREFIX.pack(MAGIC, len(head), hashlib.sha256(head).digest())
    return prefix + head + payload


def _read_header(f: BinaryIO, size: int, name: str) -> dict:
    """Returns the validated header of the file ``f`` of ``size`` bytes, which is left
    at the start of the payload; only the prefix and the header are read."""
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise CheckpointError(
            f"{name}: truncated: {len(prefix)} bytes, shorter than the {_PREFIX.size}-byte prefix"
        )
    magic, head_len, head_sha = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise CheckpointError(f"{name}: not a vograd checkpoint (bad magic bytes {magic!r})")
    if head_len > size - _PREFIX.size:
        raise CheckpointError(
            f"{name}: truncated: header needs {head_len} bytes, file has {size - _PREFIX.size}"
        )
    if head_len > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{name}: header of {head_len} bytes is over the {MAX_HEADER_BYTES}-byte limit"
        )
    head = f.read(head_len)
    if len(head) != head_len:
        raise CheckpointError(f"{name}: truncated: header needs {head_len} bytes, read {len(head)}")
    if hashlib.sha256(head).digest() != head_sha:
        raise CheckpointError(f"{name}: corrupted: header checksum mismatch")
    header = checkpoint_header.parse(head, name)
    payload = size - _PREFIX.size - head_len
    if payload != header["payload_bytes"]:
        raise CheckpointError(
            f"{name}: truncated: payload has {payload} bytes, "
            f"the header says {header['payload_bytes']}"
        )
    return header


def _verify_payload(f: BinaryIO, header: dict, name: str) -> None:
    """Checks the payload checksum, reading ``f`` from its position in 1 MiB chunks."""
    digest, left = hashlib.sha256(), header["payload_bytes"]
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            raise CheckpointError(f"{name}: truncated while reading the payload")
        digest.update(chunk)
        left -= len(chunk)
    if digest.hexdigest() != header["payload_sha256"]:
        raise CheckpointError(f"{name}: corrupted: payload checksum mismatch")


def _load(f: BinaryIO, size: int, template: Any, name: str) -> tuple[Any, dict]:
    """Returns ``(tree, header)`` from the file ``f``; validates before it allocates."""
    header = _read_header(f, size, name)
    problem = _mismatch(header["fingerprint"], fingerprint(template))
    if problem is not None:
        raise CheckpointError(f"{name}: structure mismatch: {problem}")
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(_keys_to_data(template))
    leaves = [x for _, x in paths_leaves]
    data, records = checkpoint_records.expected_bytes(leaves)
    most = data + records * checkpoint_records.MAX_RECORD_OVERHEAD
    if header["payload_bytes"] > most:
        raise CheckpointError(
            f"{name}: payload of {header['payload_bytes']} bytes, but the template's "
            f"{records} leaves need at most {most}"
        )
    start = f.tell()
    _verify_payload(f, header, name)
    f.seek(start)
    loaded = checkpoint_records.read_leaves(
        f, leaves, [jax.tree_util.keystr(p) for p, _ in paths_leaves], name
    )
    extra = start + header["payload_bytes"] - f.tell()
    if extra:
        raise CheckpointError(f"{name}: payload has {extra} bytes after the last leaf's record")

    def rewrap(t, x):
        if _is_key(t):
            impl = t.dtype._impl if isinstance(t, jax.ShapeDtypeStruct) else jax.random.key_impl(t)
            return jax.random.wrap_key_data(x, impl=impl)
        return x

    return jax.tree.map(rewrap, template, jax.tree.unflatten(treedef, loaded)), header


def decode(data: bytes, template: Any, *, name: str = "checkpoint") -> tuple[Any, dict]:
    """Returns ``(tree, header)`` decoded from checkpoint bytes, shaped like ``template``.

    ``template``'s leaves may be arrays or ``jax.ShapeDtypeStruct`` (e.g.
    ``jax.eval_shape(init, key)``, which allocates nothing). Raises
    `CheckpointError` naming the problem: truncation, corruption (checksum), a
    foreign file, a malformed header, a structure mismatch (the first
    differing leaf with its shape and dtype), or a payload record whose dtype
    or shape is not the fingerprint's.
    """
    return _load(io.BytesIO(data), len(data), template, name)


def save_checkpoint(
    path: str | os.PathLike, tree: Any, *, step: int, metadata: dict | None = None
) -> Path:
    """Returns ``path`` after writing ``tree`` there atomically."""
    path = Path(path)
    atomic_write(path, encode(tree, step=step, metadata=metadata))
    return path


def _open(path: Path) -> tuple[BinaryIO, int]:
    """Returns ``(file, size)`` of the regular file at ``path``."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    f = open(path, "rb")
    return f, os.fstat(f.fileno()).st_size


def read_header(path: str | os.PathLike) -> dict:
    """Returns a verified checkpoint's JSON header (validated, both checksums checked;
    the payload is streamed, never held in memory)."""
    path = Path(path)
    f, size = _open(path)
    with f:
        header = _read_header(f, size, str(path))
        _verify_payload(f, header, str(path))
    return header


def read_step(path: str | os.PathLike) -> int:
    """Returns the step recorded in a checkpoint's header (header checksum checked,
    payload not read)."""
    path = Path(path)
    f, size = _open(path)
    with f:
        return _read_header(f, size, str(path))["step"]


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """Returns ``(tree, header)`` loaded from ``path``; see `decode` for errors.

    Memory: the prefix and header (at most `MAX_HEADER_BYTES`) are read and
    validated first, the payload's size is checked against the template's,
    its checksum is computed in 1 MiB chunks, and only then are the leaves
    read, each straight into an array of the template's shape and dtype.
    """
    path = Path(path)
    f, size = _open(path)
    with f:
        return _load(f, size, template, str(path))


# Checkpoint directories (re-exported: ``vograd.checkpoint.save_to_directory`` etc.).
from vograd.checkpoint_dir import (  # noqa: E402
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    remove_stale_temporaries,
    save_to_directory,
    verified_checkpoints,
)
