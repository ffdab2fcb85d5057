"""Property-based fuzzing of checkpoint and pretrained-optimizer loading (hypothesis).

Every mutated file either loads into leaves of exactly the template's shapes
and dtypes, or raises `CheckpointError`; no other exception, ever. Forged
files get recomputed checksums, so the checks behind the checksums are the
ones exercised. A fresh process measures the memory spent rejecting 2 GB
and 512 MiB (sparse) files.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vograd import checkpoint as ckpt
from vograd.tasks import pretrained
from vograd.tasks.optimizers import MLPOptimizer

# Fixed examples by default (a reproducible suite); VOGRAD_FUZZ=random draws fresh ones,
# VOGRAD_FUZZ_EXAMPLES=N more of them, e.g. for a soak.
EXAMPLES = int(os.environ.get("VOGRAD_FUZZ_EXAMPLES", "600"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("VOGRAD_FUZZ") != "random",
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def template():
    return {
        "w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2),
        "b": jnp.arange(2, dtype=jnp.int32),
        "flag": np.array([True, False]),
        "key": jax.random.key(3),
        "n": np.asarray(17, np.int64),
        "s": 0.5,
    }


TEMPLATE = template()
DATA = ckpt.encode(TEMPLATE, step=4, metadata={"note": "fuzz"})
HEAD_LEN = int.from_bytes(DATA[8:16], "little")
HEADER = json.loads(DATA[48 : 48 + HEAD_LEN])
PAYLOAD = DATA[48 + HEAD_LEN :]


def describe(tree):
    out = []
    for x in jax.tree.leaves(tree):
        if ckpt._is_key(x):
            out.append(("key", jax.random.key_data(x).shape))
        elif hasattr(x, "dtype"):
            out.append((str(x.dtype), tuple(x.shape), type(x).__name__))
        else:
            out.append((type(x).__name__,))
    return out


def assert_loads_like_template_or_checkpoint_error(data: bytes, like=TEMPLATE):
    try:
        tree, header = ckpt.decode(data, like, name="fuzzed")
    except ckpt.CheckpointError:
        return False
    assert describe(tree) == describe(like)
    assert jax.tree.structure(tree) == jax.tree.structure(like)
    return True


def pack(header, payload: bytes, *, fix_payload: bool = True) -> bytes:
    if fix_payload and isinstance(header, dict):
        header = {**header, "payload_bytes": len(payload),
                  "payload_sha256": hashlib.sha256(payload).hexdigest()}
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return ckpt._PREFIX.pack(ckpt.MAGIC, len(head), hashlib.sha256(head).digest()) + head + payload


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_the_unmutated_file_loads():
    assert assert_loads_like_template_or_checkpoint_error(DATA)


@FUZZ
@given(
    cut=st.none() | st.integers(0, len(DATA)),
    flips=st.lists(st.tuples(st.integers(0, len(DATA) - 1), st.integers(0, 7)), max_size=6),
)
def test_truncations_and_bit_flips(cut, flips):
    data = bytearray(DATA[:cut] if cut is not None else DATA)
    for pos, bit in flips:
        if pos < len(data):
            data[pos] ^= 1 << bit
    loaded = assert_loads_like_template_or_checkpoint_error(bytes(data))
    assert loaded == (bytes(data) == DATA)  # checksums catch every change


def _set(tree, path, value):
    """Returns a copy of the JSON ``tree`` with ``path`` (keys / indices) set, or deleted for ...."""
    if not path:
        return tree if value is Ellipsis else value
    tree = json.loads(json.dumps(tree))
    node = tree
    for p in path[:-1]:
        node = node[p]
    if value is Ellipsis:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(HEADER))


@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(PATHS), JSON | st.just(Ellipsis)), min_size=1, max_size=3),
    fix_payload=st.booleans(),
)
def test_forged_headers_with_recomputed_checksums(edits, fix_payload):
    header = HEADER
    for path, value in edits:
        try:
            header = _set(header, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
            continue
    assert_loads_like_template_or_checkpoint_error(pack(header, PAYLOAD, fix_payload=fix_payload))


@FUZZ
@given(
    start=st.integers(0, len(PAYLOAD)),
    length=st.integers(0, 40),
    insert=st.binary(max_size=40),
    flips=st.lists(st.tuples(st.integers(0, len(PAYLOAD) - 1), st.integers(0, 7)), max_size=4),
)
def test_forged_payloads_with_recomputed_checksums(start, length, insert, flips):
    payload = bytearray(PAYLOAD)
    for pos, bit in flips:
        payload[pos] ^= 1 << bit
    payload[start : start + length] = insert
    assert_loads_like_template_or_checkpoint_error(pack(HEADER, bytes(payload)))


@pytest.fixture(scope="module")
def optimizer_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pretrained")
    lopt = MLPOptimizer(use_time=False, hidden=4)
    pretrained.save(directory / "base.ckpt", lopt, lopt.init_theta(jax.random.key(0)), step=1)
    data = (directory / "base.ckpt").read_bytes()
    n = int.from_bytes(data[8:16], "little")
    return directory, json.loads(data[48 : 48 + n]), data[48 + n :]


FIELDS = [f for f in MLPOptimizer.__dataclass_fields__] + ["layers", "units", "bogus"]
CLASSES = st.sampled_from(["MLPOptimizer", "LSTMOptimizer", "HierarchicalOptimizer"]) | JSON


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(FIELDS), JSON | st.integers(0, 10**12) | st.just(Ellipsis)),
        min_size=1, max_size=3,
    ),
    cls=st.none() | CLASSES,
)
def test_forged_pretrained_specs(optimizer_file, edits, cls):
    directory, header, payload = optimizer_file
    spec = json.loads(json.dumps(header["metadata"]["optimizer"]))
    for name, value in edits:
        if value is Ellipsis:
            spec["fields"].pop(name, None)
        else:
            spec["fields"][name] = value
    if cls is not None:
        spec["class"] = cls
    forged = {**header, "metadata": {**header["metadata"], "optimizer": spec}}
    (directory / "forged.ckpt").write_bytes(pack(forged, payload))
    try:
        lopt, theta = pretrained.load_optimizer("forged", directory)
    except ckpt.CheckpointError:
        return
    want = jax.eval_shape(lopt.init_theta, jax.random.key(0))
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(theta)] == [
        (x.shape, x.dtype) for x in jax.tree.leaves(want)
    ]


MEMORY_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, resource, sys, time, tracemalloc
    import jax, numpy as np
    from vograd import checkpoint as ckpt
    from vograd.tasks import pretrained
    from vograd.tasks.optimizers import MLPOptimizer

    directory = sys.argv[1]
    size = 2 << 30
    like = {"x": np.zeros(4, np.float32)}
    head_of = lambda h: json.dumps(h).encode()
    data = ckpt.encode(like, step=1)
    n = int.from_bytes(data[8:16], "little")
    header = json.loads(data[48 : 48 + n])

    def sparse(name, prefix):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(prefix)
            f.truncate(size)
        return path

    def forged(h):
        head = head_of(h)
        return ckpt._PREFIX.pack(ckpt.MAGIC, len(head), hashlib.sha256(head).digest()) + head

    files = {
        "zeros": sparse("zeros", b""),
        "huge_header": sparse("huge_header", ckpt._PREFIX.pack(ckpt.MAGIC, size - 48, bytes(32))),
    }
    h = dict(header, payload_sha256="0" * 64, payload_bytes=10**9)  # as many digits as the size
    h["payload_bytes"] = size - 48 - len(head_of(h))
    files["huge_payload"] = sparse("huge_payload", forged(h))
    # A fingerprint declaring a 512 MiB leaf: only read_header reads (streams) the payload.
    size = 512 << 20
    h = dict(header, payload_sha256="0" * 64, payload_bytes=10**8)
    h["fingerprint"] = {"treedef": "*", "leaves": [["['x']", [(size - 8192) // 4], "float32"]]}
    h["payload_bytes"] = size - 48 - len(head_of(h))
    files["declared"] = sparse("declared", forged(h))
    lopt = MLPOptimizer()
    pretrained.save(os.path.join(directory, "a.ckpt"), lopt, lopt.init_theta(jax.random.key(0)), step=1)
    raw = open(os.path.join(directory, "a.ckpt"), "rb").read()
    n = int.from_bytes(raw[8:16], "little")
    h, payload = json.loads(raw[48 : 48 + n]), raw[48 + n :]
    h["metadata"]["optimizer"]["fields"]["hidden"] = 10**9
    open(os.path.join(directory, "huge_hidden.ckpt"), "wb").write(forged(h) + payload)

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report = {"baseline_mb": base / 2**20}
    tracemalloc.start()
    for name, path in files.items():
        for how, call in (("load", lambda: ckpt.load_checkpoint(path, like)),
                          ("read_header", lambda: ckpt.read_header(path))):
            tracemalloc.reset_peak()
            t = time.perf_counter()
            try:
                call()
                raise SystemExit(f"{name} {how}: loaded")
            except ckpt.CheckpointError as e:
                message = str(e)
            report[f"{name}/{how}"] = {"python_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                                       "seconds": time.perf_counter() - t, "error": message[-90:]}
    tracemalloc.reset_peak()
    try:
        pretrained.load("huge_hidden", directory)
        raise SystemExit("huge_hidden: loaded")
    except ckpt.CheckpointError as e:
        report["huge_hidden/pretrained"] = {
            "python_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20, "error": str(e)[-90:]}
    report["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base) / 2**20
    print(json.dumps(report))
    """
)


def test_rejecting_2gb_sparse_files_takes_bounded_memory(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], capture_output=True, text=True,
        timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))
    # Was: 4.4 GB to reject a 2 GB file, 17.6 GB for a spec claiming a huge hidden size.
    assert report["rss_growth_mb"] < 100, report
    for case, r in report.items():
        if isinstance(r, dict):
            assert r["python_peak_mb"] < 20, (case, r)
    assert "leaves take at most 16400" in report["huge_payload/load"]["error"]
    assert "leaves take at most 16400" in report["huge_payload/read_header"]["error"]
    assert "payload checksum mismatch" in report["declared/read_header"]["error"]
    assert "the template expects float32[4]" in report["declared/load"]["error"]
    assert "over the 4194304-byte limit" in report["huge_header/load"]["error"]
    assert "bad magic" in report["zeros/load"]["error"]
    assert "larger than the" in report["huge_hidden/pretrained"]["error"]
