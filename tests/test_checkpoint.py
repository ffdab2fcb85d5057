"""Checkpoint files (vograd/checkpoint.py): round trip, atomicity, clear errors."""

import hashlib
import io
import json
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vograd
from vograd import checkpoint as ckpt


class TinyMLP(eqx.Module):
    layers: list
    activation: object = eqx.field(static=True)

    def __init__(self, sizes, key):
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        self.activation = jax.nn.relu


def make_tree(sizes=(3, 8, 2), seed=0):
    theta = TinyMLP(sizes, jax.random.key(seed))
    opt_state = optax.adam(1e-3).init(eqx.filter(theta, eqx.is_array))
    return {
        "theta": theta,
        "opt_state": opt_state,
        "key": jax.random.fold_in(jax.random.key(seed), 5),
        "raw_key": jax.random.PRNGKey(3),
        "t": jnp.arange(4, dtype=jnp.int32),
        "flag": jnp.array([True, False]),
        "step": np.asarray(17, np.int64),
    }


def leaves_bytes(tree):
    out = []
    for x in jax.tree.leaves(tree):
        if ckpt._is_key(x):
            x = jax.random.key_data(x)
        out.append((np.asarray(x).dtype.str, np.asarray(x).tobytes()))
    return out


def test_round_trip_is_bit_exact_including_typed_keys(tmp_path):
    tree = make_tree()
    # Perturb so the loaded values cannot come from the template.
    tree["theta"] = jax.tree.map(lambda x: x * 1.5 + 0.1 if eqx.is_array(x) else x, tree["theta"])
    path = vograd.save_checkpoint(tmp_path / "a.vograd", tree, step=17, metadata={"note": "x"})
    loaded, header = vograd.load_checkpoint(path, make_tree(seed=1))
    assert leaves_bytes(loaded) == leaves_bytes(tree)
    assert jax.random.key_impl(loaded["key"]) == jax.random.key_impl(tree["key"])
    assert jnp.issubdtype(loaded["key"].dtype, jax.dtypes.prng_key)
    assert header["step"] == 17 and header["metadata"] == {"note": "x"}
    assert header["format_version"] == ckpt.FORMAT_VERSION
    # The treedef string holds no memory addresses (function reprs are scrubbed).
    assert " at 0x" not in header["fingerprint"]["treedef"]
    # Only the final file: the temporary was renamed away.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.vograd"]


def test_truncated_file_is_rejected_with_its_reason(tmp_path):
    path = vograd.save_checkpoint(tmp_path / "a.vograd", make_tree(), step=1)
    data = path.read_bytes()
    for cut, match in [
        (10, "truncated: 10 bytes, shorter than the 48-byte prefix"),
        (60, "truncated: header needs"),
        (len(data) - 7, r"truncated: payload has \d+ bytes, the header says \d+"),
    ]:
        path.write_bytes(data[:cut])
        with pytest.raises(vograd.CheckpointError, match=match):
            vograd.load_checkpoint(path, make_tree())


def test_corrupted_bytes_are_detected_by_checksums(tmp_path):
    path = vograd.save_checkpoint(tmp_path / "a.vograd", make_tree(), step=1)
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[8:16], "little")
    for offset, match in [
        (0, "not a vograd checkpoint"),
        (48 + header_len // 2, "header checksum mismatch"),
        (len(data) - 3, "payload checksum mismatch"),
    ]:
        bad = bytearray(data)
        bad[offset] ^= 0x40
        path.write_bytes(bytes(bad))
        with pytest.raises(vograd.CheckpointError, match=match):
            vograd.load_checkpoint(path, make_tree())


def test_other_architecture_names_the_first_differing_leaf(tmp_path):
    path = vograd.save_checkpoint(tmp_path / "a.vograd", make_tree((3, 8, 2)), step=1)
    # Wider hidden layer: same leaves, other shapes.
    with pytest.raises(vograd.CheckpointError) as err:
        vograd.load_checkpoint(path, make_tree((3, 16, 2)))
    msg = str(err.value)
    assert "structure mismatch" in msg
    # weight0 [8,3], bias0 [8], weight1 [2,8] change, in theta and in Adam's mu and nu.
    assert "9 leaves differ" in msg
    assert ".layers[0].weight: the checkpoint has float32[8,3]" in msg
    assert "float32[8,3]" in msg and "float32[16,3]" in msg
    # Deeper network: more leaves.
    with pytest.raises(vograd.CheckpointError) as err:
        vograd.load_checkpoint(path, make_tree((3, 8, 8, 2)))
    # One more Linear layer: weight and bias in theta, mu and nu (6 leaves).
    msg = str(err.value)
    assert "the checkpoint has 18 leaves, the template 24" in msg
    assert "only in the checkpoint: none" in msg
    assert ".mu.layers[2].weight float32[2,8]" in msg and "(and 2 more)" in msg
    # Same shapes, other dtype.
    tree = make_tree()
    tree["t"] = tree["t"].astype(jnp.float32)
    with pytest.raises(vograd.CheckpointError, match=r"\['t'\]: the checkpoint has int32\[4\], the template expects float32\[4\]"):
        vograd.load_checkpoint(path, tree)


def test_pickled_payload_is_refused_even_with_valid_checksums(tmp_path):
    # An attacker can recompute checksums; loading must still never unpickle.
    template = {"x": np.zeros(2)}
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    payload = buf.getvalue()
    header = {
        "format_version": ckpt.FORMAT_VERSION, "step": 0, "metadata": {},
        "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "fingerprint": ckpt.fingerprint(template),
    }
    head = json.dumps(header).encode()
    data = ckpt._PREFIX.pack(ckpt.MAGIC, len(head), hashlib.sha256(head).digest()) + head + payload
    (tmp_path / "evil.vograd").write_bytes(data)
    with pytest.raises(vograd.CheckpointError, match="Python objects .object.; pickled data is never loaded"):
        vograd.load_checkpoint(tmp_path / "evil.vograd", template)


def test_directory_keeps_newest_and_ignores_temporaries(tmp_path):
    tree = make_tree()
    for step in (1, 2, 3, 4):
        ckpt.save_to_directory(tmp_path, tree, step=step, keep=2)
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [3, 4]
    # A temporary left by a killed writer (pid 2**22 + 1 is above Linux's pid_max
    # default, so no live process owns it) is never listed, and is cleaned up.
    stale = tmp_path / f".{ckpt.checkpoint_path(tmp_path, 5).name}.tmp-{2**22 + 1}"
    stale.write_bytes(b"half a checkpoint")
    assert vograd.latest_checkpoint(tmp_path).name == "checkpoint_000000004.vograd"
    ckpt.save_to_directory(tmp_path, tree, step=5, keep=None)
    assert not stale.exists()
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [3, 4, 5]
    with pytest.raises(ValueError, match="keep must be an int >= 1 or None"):
        ckpt.save_to_directory(tmp_path, tree, step=6, keep=0)


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = vograd.save_checkpoint(tmp_path / "a.vograd", {"x": np.ones(3)}, step=1)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        vograd.save_checkpoint(path, {"x": np.zeros(3)}, step=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.vograd"]


def test_missing_file_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        vograd.load_checkpoint(tmp_path / "nope.vograd", {"x": np.ones(1)})


def forge(header: dict | bytes, payload: bytes) -> bytes:
    """Returns a file with ``header`` (a dict or raw bytes) and valid prefix checksum."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return ckpt._PREFIX.pack(ckpt.MAGIC, len(head), hashlib.sha256(head).digest()) + head + payload


def split(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[8:16], "little")
    return json.loads(data[48 : 48 + n]), data[48 + n :]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda h: b"[1, 2]", "malformed header: an array, not an object"),
        (lambda h: b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        (lambda h: b"{\"a\": \xff}", "malformed header: not UTF-8"),
        (lambda h: b"{\"step\": 1,", "malformed header: not JSON"),
        (lambda h: {**h, "format_version": True}, "format version True is not the supported version 1"),
        (lambda h: {k: v for k, v in h.items() if k != "step"}, "malformed header: missing 'step'"),
        (lambda h: {**h, "step": "3"}, "'step' is a string, expected an integer"),
        (lambda h: {**h, "step": -1}, r"'step' = -1 is outside \[0, 2\*\*63\)"),
        (lambda h: {**h, "metadata": None}, "'metadata' is null, expected an object"),
        (lambda h: {**h, "payload_bytes": True}, "'payload_bytes' is a boolean, expected an integer"),
        (lambda h: {**h, "payload_sha256": "AB" * 32}, "not 64 lowercase hex digits"),
        (lambda h: {**h, "fingerprint": {"leaves": []}}, "must have the keys 'treedef' and 'leaves'"),
        (lambda h: {**h, "fingerprint": {**h["fingerprint"], "leaves": {}}},
         "'fingerprint.leaves' is an object, not an array"),
        (lambda h: {**h, "fingerprint": {**h["fingerprint"], "leaves": [["['x']", [2], "float32", 1]]}},
         r"fingerprint leaf 0 is not \[path, shape, dtype\]"),
        (lambda h: {**h, "fingerprint": {**h["fingerprint"], "leaves": [["['x']", [-2], "float32"]]}},
         r"fingerprint leaf 0 \(\['x'\]\): shape must be at most 64 integers in \[0, 2\*\*63\)"),
        (lambda h: {**h, "fingerprint": {**h["fingerprint"], "leaves": [["['x']", [10**9, 10**9], "float32"]]}},
         r"leaves hold 4000000000000000000 bytes, more than the \d+-byte payload"),
        (lambda h: {**h, "payload_bytes": h["payload_bytes"] + 1},
         r"truncated: payload has \d+ bytes, the header says \d+"),
    ],
)
def test_forged_headers_with_valid_checksums_raise_checkpoint_error(tmp_path, mutate, match):
    template = {"x": np.zeros(2, np.float32)}
    header, payload = split(ckpt.encode(template, step=1))
    path = tmp_path / "forged.vograd"
    path.write_bytes(forge(mutate(header), payload))
    with pytest.raises(vograd.CheckpointError, match=match):
        vograd.load_checkpoint(path, template)
    with pytest.raises(vograd.CheckpointError, match=match):
        vograd.read_header(path)


@pytest.mark.parametrize("jax_leaf", [False, True])
def test_payload_dtype_must_match_the_fingerprint(tmp_path, jax_leaf):
    # Was: a float64 record where the fingerprint says float32 was silently cast.
    template = {"x": jnp.zeros(2) if jax_leaf else np.zeros(2, np.float32)}
    header, _ = split(ckpt.encode(template, step=1))
    buf = io.BytesIO()
    np.save(buf, np.array([1.0, 2.0], np.float64))
    payload = buf.getvalue()
    header.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    (tmp_path / "f.vograd").write_bytes(forge(header, payload))
    with pytest.raises(vograd.CheckpointError,
                       match=r"leaf \['x'\]: the record holds float64\[2\], the fingerprint and template say float32\[2\]"):
        vograd.load_checkpoint(tmp_path / "f.vograd", template)


def test_oversized_payload_is_refused_before_its_checksum_is_read(tmp_path, monkeypatch):
    template = {"x": np.zeros(2, np.float32)}
    header, payload = split(ckpt.encode(template, step=1))
    payload += b"\0" * (1 << 20)
    header.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    (tmp_path / "f.vograd").write_bytes(forge(header, payload))
    monkeypatch.setattr(ckpt, "_verify_payload", lambda *a: pytest.fail("payload was read"))
    match = r"a payload of 1048712 bytes, but the fingerprint's 1 leaves take at most 16392"
    with pytest.raises(vograd.CheckpointError, match=match):
        vograd.load_checkpoint(tmp_path / "f.vograd", template)
    with pytest.raises(vograd.CheckpointError, match=match):
        vograd.read_header(tmp_path / "f.vograd")


def test_abstract_template_loads_without_allocating_it(tmp_path):
    # (eval_shape would turn the int64 numpy leaf 'step' into int32: left out.)
    tree = {k: v for k, v in make_tree().items() if k != "step"}
    path = vograd.save_checkpoint(tmp_path / "a.vograd", tree, step=3)
    abstract = jax.eval_shape(lambda: tree)
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract))
    loaded, _ = vograd.load_checkpoint(path, abstract)
    assert leaves_bytes(loaded) == leaves_bytes(tree)
    assert jax.random.key_impl(loaded["key"]) == jax.random.key_impl(tree["key"])


def test_temporaries_are_exclusive_unpredictable_and_never_follow_symlinks(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    path = tmp_path / "a.json"
    # The old predictable temporary name, planted as a symlink: unused now.
    (tmp_path / f".a.json.tmp-{os.getpid()}").symlink_to(victim)
    # A symlink planted at the very name drawn first: O_EXCL refuses it, a new name is drawn.
    names = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(ckpt.secrets, "token_hex", lambda n: next(names))
    (tmp_path / f".a.json.tmp-{os.getpid()}-{'0' * 16}").symlink_to(victim)
    ckpt.atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and victim.read_bytes() == b"precious"
    # A symlink at the final name is replaced, not written through.
    monkeypatch.undo()
    link = tmp_path / "b.json"
    link.symlink_to(victim)
    ckpt.atomic_write(link, b"other")
    assert not link.is_symlink() and link.read_bytes() == b"other"
    assert victim.read_bytes() == b"precious"
    # Two draws of the random part differ (64 random bits).
    fd1, t1 = ckpt._create_temporary(path)
    fd2, t2 = ckpt._create_temporary(path)
    os.close(fd1), os.close(fd2)
    assert t1 != t2 and t1.name.startswith(f".a.json.tmp-{os.getpid()}-")


def test_rotation_never_deletes_the_new_file_or_later_named_ones(tmp_path):
    tree = {"x": np.ones(2)}
    for step in (1, 2):
        ckpt.save_to_directory(tmp_path, tree, step=step, keep=1)
    vograd.save_checkpoint(tmp_path / "checkpoint_000000009.vograd", tree, step=9)
    ckpt.save_to_directory(tmp_path, tree, step=3, keep=1)
    assert [s for s, _ in vograd.list_checkpoints(tmp_path)] == [3, 9]
    assert [s for s, _ in ckpt.verified_checkpoints(tmp_path)] == [3, 9]
    # A file whose header records another step than its name is reported.
    (tmp_path / "checkpoint_000000009.vograd").rename(tmp_path / "checkpoint_000000010.vograd")
    with pytest.raises(vograd.CheckpointError, match="checkpoint_000000010.vograd records step 9, its name says 10"):
        vograd.latest_checkpoint(tmp_path)
