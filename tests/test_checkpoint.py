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
