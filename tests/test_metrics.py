"""Metrics writers (vograd/metrics.py): JSON lines, TensorBoard scalars and callbacks from
one training run, consistent across a resume."""

import json
import struct
from pathlib import Path

import jax
import pytest

import vograd
from vograd import metrics

from train_fixtures import ESTIMATOR, OPTIMIZER, SCHEDULE, SYSTEM


def _train(num_steps, log, checkpoint_dir):
    return vograd.train(SYSTEM, ESTIMATOR, OPTIMIZER, num_steps, jax.random.key(0),
                        schedule=SCHEDULE, clip_to_episode=False, progress=False, log=log,
                        checkpoint_dir=checkpoint_dir, checkpoint_every=5)


def read_scalars(logdir: Path) -> dict[str, dict[int, float]]:
    """Returns ``{tag: {step: value}}`` from the event files, as TensorBoard reads them: in
    write order, a SessionLog START at step s hiding the earlier events at steps >= s."""
    from tensorboardX.proto import event_pb2

    events = []
    for f in sorted(logdir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        data, i = f.read_bytes(), 0
        while i < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack("<Q", data[i:i + 8])
            events.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
            i += 16 + n
    out: dict[str, dict[int, float]] = {}
    for ev in events:
        if ev.HasField("session_log") and ev.session_log.status == ev.session_log.START:
            for series in out.values():
                for s in [s for s in series if s >= ev.step]:
                    del series[s]
        for v in ev.summary.value:
            out.setdefault(v.tag, {})[ev.step] = v.simple_value
    return out


def test_flatten_keeps_finite_numbers_by_path():
    record = {"step": 3, "loss": 1.5, "variance": {"rp": 0.25, "es": float("nan")},
              "skipped": False, "skip_reason": None, "window": None, "name": "x"}
    assert metrics.flatten(record) == {"step": 3.0, "loss": 1.5, "variance/rp": 0.25,
                                       "skipped": 0.0}


def test_writers_accept_paths_functions_writers_and_lists(tmp_path):
    seen = []
    tb = metrics.Callback(seen.append)
    got = metrics.writers([tmp_path / "m.jsonl", seen.append, tb, None])
    assert [type(w) for w in got] == [metrics.JsonLines, metrics.Callback, metrics.Callback]
    assert got[2] is tb
    with pytest.raises(TypeError, match="log must be"):
        metrics.writers(3)


def test_tensorboard_jsonl_and_callback_agree_across_a_resume(tmp_path):
    pytest.importorskip("tensorboardX")
    seen = []
    log = [tmp_path / "metrics.jsonl", metrics.TensorBoard(tmp_path / "tb"), seen.append]
    _train(8, log, tmp_path / "ck")
    # Crash simulation: the newest checkpoint (step 8) is lost, so the run resumes from 5
    # and re-runs steps 5-7, whose first-run events must be hidden.
    (tmp_path / "ck" / "checkpoint_000000008.vograd").unlink()
    log[1] = metrics.TensorBoard(tmp_path / "tb")
    result = _train(12, log, tmp_path / "ck")
    assert result.resumed_from == 5
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(12))
    assert [r["step"] for r in seen] == list(range(8)) + list(range(5, 12))
    scalars = read_scalars(tmp_path / "tb")
    assert sorted(scalars["loss"]) == list(range(12))
    for r in lines:
        # float32 in the event file: relative 1e-6.
        assert scalars["loss"][r["step"]] == pytest.approx(r["loss"], rel=1e-6)
        assert scalars["grad_norm"][r["step"]] == pytest.approx(r["grad_norm"], rel=1e-6)
        assert scalars["window"][r["step"]] == r["window"]


def test_tensorboard_without_tensorboardx_says_which_extra(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"vograd\[tensorboard\]"):
        metrics.TensorBoard(tmp_path)
