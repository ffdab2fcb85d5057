"""Smoke test of the speed benchmark (quick mode): sane figures, no timing thresholds."""

from __future__ import annotations

import json
import math

import pytest

from vograd.benchmarks.speed import run as speed


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_speed")
    text = speed.main(out_dir=str(out), quick=True)
    return text, json.loads((out / "speed.json").read_text())


def test_report_has_every_section_and_the_command(quick_run):
    text, _ = quick_run
    assert "vograd bench speed --quick" in text
    for section in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert section in text
    assert "not re-measured" in text  # the reference figures are quoted, not measured


def test_throughput_rows_are_positive_and_consistent(quick_run):
    _, results = quick_run
    rows = [r for task in results["throughput"] for r in task["rows"]]
    assert {r["name"] for r in rows} >= {"adam", "lo", "ES"}
    for r in rows:
        assert r["wall_s"] > 0 and math.isfinite(r["steps_per_s"]) and r["steps_per_s"] > 0
        # steps/s is by definition 16 unrolls x window over the median time.
        assert r["steps_per_s"] == pytest.approx(16 * r["window"] / r["wall_s"])
        assert r["compile_s"] > 0 and r["x_adam"] > 0 and r["x_lo_scan"] > 0


def test_achieved_flops_are_a_sane_fraction_of_the_measured_peak(quick_run):
    _, results = quick_run
    peak = max(results["peak_before"]["flop_per_s"], results["peak_after"]["flop_per_s"])
    assert peak > 1e9  # any CPU of the last decade does more than 1 GFLOP/s on a matmul
    for task in results["throughput"]:
        assert task["step_flops"]["lo"] > task["step_flops"]["adam"] > 0
        for r in task["rows"]:
            # Above 1.5x the measured matmul peak would mean a wrong FLOP count or clock.
            assert 0 < r["flop_per_s"] / peak <= 1.5


def test_chunked_memory_is_one_bounded_executable(quick_run):
    _, results = quick_run
    mem = results["memory"]
    assert mem["chunked_cache_size"] == 1  # every length ran without recompiling
    chunked = [r for r in mem["rows"] if r["mode"] == "chunked"]
    unchunked = {r["window"]: r["temp_bytes"] for r in mem["rows"] if r["mode"] == "unchunked"}
    assert len({r["temp_bytes"] for r in chunked}) == 1
    longest = max(unchunked)
    # Without recomputation reverse mode keeps every step: memory grows with the window
    # and exceeds the chunked executable compiled for that same window.
    assert unchunked[longest] > unchunked[min(unchunked)]
    assert chunked[0]["temp_bytes"] < unchunked[longest]
    for r in chunked:
        assert r["wall_s"] > 0


def test_reverse_cost_rows_compare_the_merge_with_a_plain_reverse_pass():
    from vograd.benchmarks.speed import reverse_cost

    name = "AdaptiveMLPOptimizer(hidden=8)"  # one optimizer: three compiles, ~60 s on 2 cores
    rows = reverse_cost.run("quadratic", window=5, rounds=2, log=lambda _: None,
                            optimizers=(name,))
    assert [(r["optimizer"], r["estimator"]) for r in rows] == [
        (name, e) for e in reverse_cost.ESTIMATORS]
    for r in rows:
        assert r["s_per_estimate"] > 0 and r["compile_s"] > 0
        if r["estimator"] == "ES":
            assert r["x_es"] == 1.0
        if r["estimator"] == "TBPTT":
            assert r["x_tbptt"] == 1.0
    assert "| Merged |" in reverse_cost.format_table(rows)
    with pytest.raises(KeyError, match="unknown optimizers"):
        reverse_cost.run("quadratic", optimizers=("SGD",))
