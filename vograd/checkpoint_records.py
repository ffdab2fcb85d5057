"""Reading a checkpoint's payload: one ``.npy`` record per array leaf, checked against a template.

The payload is what ``eqx.tree_serialise_leaves`` writes: for every leaf of
the tree, in ``jax.tree.leaves`` order, the ``np.save`` record of each array
(JAX, NumPy, NumPy scalar) or Python ``bool``/``int``/``float``/``complex``;
other leaves write nothing. Unlike ``eqx.tree_deserialise_leaves``, each
record's header (dtype, shape) is compared with the template's leaf *before*
its data is read, so a forged record cannot allocate more than the template
holds, cannot be cast silently (a float64 record where the template has
float32 is refused) and is never unpickled (object dtypes are refused).
"""

from __future__ import annotations

import math
from typing import Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from vograd.checkpoint_header import MAX_RECORD_OVERHEAD, CheckpointError


def leaf_kind(x: Any) -> str | None:
    """Returns how a template leaf is stored: "jax", "numpy", "generic", "python",
    or None (not stored)."""
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return "jax"
    if isinstance(x, np.ndarray):
        return "numpy"
    if isinstance(x, np.generic):
        return "generic"
    if isinstance(x, (bool, int, float, complex)):
        return "python"
    return None


def expected_bytes(leaves: list) -> tuple[int, int]:
    """Returns ``(data_bytes, num_records)`` of the records the template ``leaves`` expect."""
    data, count = 0, 0
    for x in leaves:
        kind = leaf_kind(x)
        if kind is None:
            continue
        count += 1
        if kind != "python":
            data += math.prod(x.shape) * np.dtype(x.dtype).itemsize
        else:
            data += 16
    return data, count


def _read_header(f: BinaryIO, where: str) -> tuple[tuple, bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    except Exception as e:  # numpy's parser of untrusted bytes: ValueError, SyntaxError, ...
        raise CheckpointError(f"{where}: not an array record ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{where}: npy format version {version} is not supported")


def _fmt(shape, dtype) -> str:
    return f"{dtype}[{','.join(map(str, shape))}]"


def read_leaf(f: BinaryIO, like: Any, where: str) -> Any:
    """Returns the leaf of the next record in ``f``, of the type, shape and dtype of ``like``."""
    kind = leaf_kind(like)
    if kind is None:
        return like
    shape, fortran, dtype = _read_header(f, where)
    if dtype.hasobject:
        raise CheckpointError(
            f"{where}: the record holds Python objects ({dtype}); pickled data is never loaded"
        )
    if kind == "python":
        want_shape = ()
        kinds = ("b" if isinstance(like, bool) else "iu" if isinstance(like, int)
                 else "f" if isinstance(like, float) else "c")
        ok = dtype.kind in kinds
        want = f"a {type(like).__name__}"
    else:
        want_shape, want_dtype = tuple(like.shape), np.dtype(like.dtype)
        # ml_dtypes (bfloat16, float8) are saved as raw void records of their size.
        ok = dtype == want_dtype or (
            want_dtype.kind == "V" and dtype.kind == "V" and dtype.fields is None
            and dtype.itemsize == want_dtype.itemsize
        )
        want = _fmt(want_shape, want_dtype)
    if not ok or tuple(shape) != want_shape:
        raise CheckpointError(
            f"{where}: the record holds {_fmt(shape, dtype)}, "
            f"the fingerprint and template say {want}"
        )
    out = np.empty(math.prod(shape), dtype)
    view = memoryview(out).cast("B") if out.nbytes else bytearray()
    got = f.readinto(view) if out.nbytes else 0
    if got != out.nbytes:
        raise CheckpointError(f"{where}: record cut short: {got} of {out.nbytes} data bytes")
    out = out.reshape(shape[::-1]).T if fortran else out.reshape(shape)
    if kind == "python":
        return type(like)(out.item())
    if kind == "generic":
        if out.dtype != np.dtype(like.dtype):  # an ml_dtypes scalar
            return out.view(like.dtype)[()]
        return type(like)(out.item())
    out = out.view(like.dtype) if out.dtype != np.dtype(like.dtype) else out
    return jnp.asarray(out) if kind == "jax" else out


def read_leaves(f: BinaryIO, leaves: list, paths: list[str], name: str) -> list:
    """Returns the leaves read from ``f`` for the template ``leaves`` (see `read_leaf`)."""
    return [read_leaf(f, x, f"{name}: leaf {p}") for p, x in zip(paths, leaves)]
