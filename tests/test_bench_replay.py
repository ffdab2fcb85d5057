"""vograd/benchmarks/speed/replay_time.py: a finished run's cost re-timed from its own log."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vograd.benchmarks.speed import replay_time
from vograd.recipes import registry, run
from vograd.recipes.config import Truncation


def test_replay_times_every_compiled_size_of_the_log(tmp_path):
    cfg = replace(registry.preset("metz2019", "demo"), outer_steps=2, checkpoint_every=1,
                  truncation=Truncation(fixed=4))
    run.train("metz2019", cfg, tmp_path, seed=0, preset="demo", progress=False)
    rows = run.read_metrics(tmp_path)
    result = replay_time.replay(tmp_path, repeats=1)
    (b,) = result["buckets"]
    assert (b["bucket"], b["steps"], b["windows"]) == (4, 2, (4, 4))
    # One window length only: the fit is proportional, and the prediction is the
    # run's steps at that cost plus one compilation.
    assert b["s_per_window_step"] > 0 and b["replayed_median_step_s"] == pytest.approx(
        4 * b["s_per_window_step"])
    assert result["replayed_s"] == pytest.approx(2 * 4 * b["s_per_window_step"] + b["compile_s"])
    assert result["logged_s"] == pytest.approx(sum(r["step_time"] for r in rows))
    text = replay_time.report(result)
    assert "| 4 | 2 | 4-4 |" in text and "Logged / replayed" in text
    # The command line writes the same figures as JSON.
    replay_time.main([str(tmp_path), "--repeats", "1", "--json", str(tmp_path / "r.json")])
    (again,) = json.loads((tmp_path / "r.json").read_text())
    assert again["steps"] == 2 and again["buckets"][0]["bucket"] == 4


def test_replay_refuses_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        replay_time.replay(tmp_path)
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        replay_time.replay(tmp_path, repeats=0)
