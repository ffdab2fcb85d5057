"""The JSON header of a checkpoint file: parsed and validated before anything is allocated.

A header is trusted only after its checksum matched, but a checksum proves
nothing against a forger, so every field is checked for its JSON type and
range here, and the sizes it declares are compared with the file's size:

- the header itself is at most `MAX_HEADER_BYTES` (JSON parsing can take ~20
  bytes of Python objects per header byte, so this bounds the memory spent on
  a forged header to ~100 MB);
- ``payload_bytes`` must equal what the file holds after the header;
- the leaves listed in the fingerprint, ``sum prod(shape) * itemsize``, must
  fit in ``payload_bytes``, and ``payload_bytes`` must not exceed what they can
  take (so a huge file behind a small fingerprint is refused unread).

Every problem raises `CheckpointError` naming the field and what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

FORMAT_VERSION = 1
MAX_HEADER_BYTES = 4 << 20
MAX_DIMS = 64  # numpy's limit on array rank
# The largest header of an .npy record numpy writes by default is 10,000 bytes.
MAX_RECORD_OVERHEAD = 16 << 10
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DTYPE_BITS = re.compile(r"^(?:bool|u?int(\d+)|float(\d+)|complex(\d+)|bfloat16|float8_\w+)$")
_FIELDS = {
    "format_version": int,
    "step": int,
    "payload_bytes": int,
    "payload_sha256": str,
    "fingerprint": dict,
    "metadata": dict,
}
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean", type(None): "null"}


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupted, or of another structure."""


def json_kind(x: Any) -> str:
    """Returns the JSON name of ``x``'s type ("an object", "an integer", ...)."""
    return _JSON_NAMES.get(type(x), type(x).__name__)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse(head: bytes, name: str) -> dict:
    """Returns the validated header dict of the header bytes ``head`` (see `check`)."""
    try:
        header = json.loads(head.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{name}: malformed header: JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{name}: malformed header: not UTF-8 ({e})") from None
    except ValueError as e:  # json.JSONDecodeError, or an integer literal too long
        raise CheckpointError(f"{name}: malformed header: not JSON ({e})") from None
    check(header, name)
    return header


def check(header: Any, name: str) -> None:
    """Raises `CheckpointError` unless ``header`` has every field, of its JSON type and range.

    Fields: ``format_version`` (= `FORMAT_VERSION`), ``step`` and
    ``payload_bytes`` (integers in ``[0, 2**63)``), ``payload_sha256`` (64
    lowercase hex digits), ``metadata`` (an object) and ``fingerprint``
    (``{"treedef": str, "leaves": [[path: str, shape: [int >= 0, ...], dtype: str], ...]}``)
    whose leaves fit in ``payload_bytes``.
    """
    bad = f"{name}: malformed header:"
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad} {json_kind(header)}, not an object")
    version = header.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: format version {version!r} is not the supported version {FORMAT_VERSION}"
        )
    missing = [k for k in _FIELDS if k not in header]
    if missing:
        raise CheckpointError(f"{bad} missing {', '.join(map(repr, missing))}")
    for key, kind in _FIELDS.items():
        value = header[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(
                f"{bad} {key!r} is {json_kind(value)}, expected {json_kind(kind())}"
            )
    for key in ("step", "payload_bytes"):
        if not 0 <= header[key] < 2**63:
            raise CheckpointError(f"{bad} {key!r} = {header[key]} is outside [0, 2**63)")
    if not _SHA256.match(header["payload_sha256"]):
        raise CheckpointError(f"{bad} 'payload_sha256' is not 64 lowercase hex digits")
    least, most = _check_fingerprint(header["fingerprint"], bad)
    if least > header["payload_bytes"]:
        raise CheckpointError(
            f"{bad} the fingerprint's leaves hold {least} bytes, more than the "
            f"{header['payload_bytes']}-byte payload"
        )
    if header["payload_bytes"] > most:
        raise CheckpointError(
            f"{bad} a payload of {header['payload_bytes']} bytes, but the fingerprint's "
            f"{len(header['fingerprint']['leaves'])} leaves take at most {most}"
        )


def _check_fingerprint(fp: dict, bad: str) -> tuple[int, float]:
    """Returns the least and the most payload bytes the leaves of a well-formed
    fingerprint can take (numpy dtypes exactly; keys at most 64 bytes per
    element, Python scalars 16; each record's header at most `MAX_RECORD_OVERHEAD`;
    a dtype numpy does not know: no upper bound)."""
    if set(fp) != {"treedef", "leaves"}:
        raise CheckpointError(
            f"{bad} 'fingerprint' must have the keys 'treedef' and 'leaves', has {sorted(fp)}"
        )
    if not isinstance(fp["treedef"], str):
        raise CheckpointError(
            f"{bad} 'fingerprint.treedef' is {json_kind(fp['treedef'])}, not a string"
        )
    if not isinstance(fp["leaves"], list):
        raise CheckpointError(
            f"{bad} 'fingerprint.leaves' is {json_kind(fp['leaves'])}, not an array"
        )
    least = most = 0
    for i, leaf in enumerate(fp["leaves"]):
        where = f"{bad} fingerprint leaf {i}"
        if not (isinstance(leaf, list) and len(leaf) == 3):
            raise CheckpointError(f"{where} is not [path, shape, dtype]")
        path, shape, dtype = leaf
        if not isinstance(path, str) or not isinstance(dtype, str):
            raise CheckpointError(f"{where}: path and dtype must be strings")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS
                and all(_is_int(d) and 0 <= d < 2**63 for d in shape)):
            raise CheckpointError(
                f"{where} ({path}): shape must be at most {MAX_DIMS} integers in [0, 2**63)"
            )
        count = math.prod(shape)
        if dtype.startswith("py:"):
            most += 16 + MAX_RECORD_OVERHEAD
        elif dtype.startswith("key<"):
            most += count * 64 + MAX_RECORD_OVERHEAD
        elif (size := itemsize(dtype)) is not None:
            least += count * size
            most += count * size + MAX_RECORD_OVERHEAD
        else:
            most = math.inf
    return least, most


def itemsize(dtype: str) -> int | None:
    """Returns the bytes per element of a dtype name (``"float32"``, ``"<U8"``, ...),
    or None when numpy does not know it."""
    m = _DTYPE_BITS.match(dtype)
    if m is None:
        if len(dtype) > 64:
            return None
        try:
            parsed = np.dtype(dtype)
        except Exception:  # numpy's parser of an untrusted string: TypeError, ValueError, ...
            return None
        return None if parsed.hasobject else parsed.itemsize
    if dtype == "bool" or dtype.startswith("float8"):
        return 1
    if dtype == "bfloat16":
        return 2
    bits = int(next(g for g in m.groups() if g is not None))
    return max(bits // 8, 1)
