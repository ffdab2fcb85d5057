"""The Metz 2019 reproductions at their tiny size: real numbers, a verdict, resumption.

The three share compiled programs (same tiny config, one process), so the
first test pays most of the compile time.
"""

import math

import numpy as np
import pytest

from vograd.recipes.reproductions import base, confidence
from vograd.recipes.reproductions import metz2019_ablations as ablations
from vograd.recipes.reproductions import metz2019_bias_variance as bias_variance
from vograd.recipes.reproductions import metz2019_outer_curves as outer_curves
from vograd.recipes.reproductions import metz2019_training


def _refuse(*args, **kwargs):
    raise AssertionError("a resumed reproduction recomputed a finished part")


def test_mean_interval_is_a_student_t_interval():
    got = confidence.mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{2, 0.975} * sd / sqrt(n)
    assert got["mean"] == 2.0 and got["sd"] == 1.0
    assert got["low"] == pytest.approx(2.0 - half) and got["high"] == pytest.approx(2.0 + half)
    assert confidence.mean_interval([5.0])["low"] is None


def test_paired_difference_counts_an_arm_that_diverged():
    got = confidence.paired_difference([1.0, 2.0, 3.0], [1.5, 2.5, float("inf")])
    assert got["pairs"] == 2 and got["arm_diverged"] == 1 and got["mean"] == pytest.approx(0.5)


def test_fixed_truncations_keep_the_curriculums_inner_steps():
    config = ablations.arm_config("full", "full")
    budget = ablations.curriculum_inner_steps(config)
    for arm, window in zip(("trunc_S", "trunc_M", "trunc_L"), ablations.WINDOWS["full"]):
        fixed = ablations.arm_config("full", arm)
        assert fixed.truncation.fixed == window
        assert budget <= fixed.outer_steps * window < budget + window


def test_ablations_tiny(tmp_path, monkeypatch):
    # Three arms that share the tiny full arm's compiled programs: every arm
    # of ablations.ARMS would compile five training programs (minutes in CI).
    monkeypatch.setattr(ablations, "ARMS", ("full", "trunc_S", "trunc_L"))
    results = ablations.REPRODUCTION.run(tmp_path, "tiny", 3, False)
    assert results["verdict"] in base.VERDICTS
    for arm in ("full", "trunc_S", "trunc_L"):
        scores = [r["score"] for r in results["arms"][arm]]
        assert len(scores) == 3 and all(s is not None and np.isfinite(s) for s in scores)
    assert results["arms"]["trunc_S"][0]["outer_steps"] > results["arms"]["trunc_L"][0]["outer_steps"]
    assert results["paired"]["trunc_S"]["pairs"] == 3
    assert {c["supported"] for c in results["claims"] if c["arm"] == "grad_only"} == {None}
    assert (tmp_path / "report.md").read_text().count("| full |") == 1
    monkeypatch.setattr(metz2019_training, "train", _refuse)
    again = ablations.REPRODUCTION.run(tmp_path, "tiny", 3, False)
    assert again["arms"] == results["arms"]


def test_outer_curves_tiny(tmp_path, monkeypatch):
    results = outer_curves.REPRODUCTION.run(tmp_path, "tiny", 3, False)
    assert results["verdict"] in base.VERDICTS
    assert len(results["curves"]) == 3
    for c in results["curves"]:
        assert c["steps"] == [0, 2, 4]
        assert all(v is not None and np.isfinite(v) for v in c["loss"])
    assert np.isfinite(results["adam"]["score"])
    monkeypatch.setattr(metz2019_training, "train", _refuse)
    monkeypatch.setattr(outer_curves.metz2019_scale, "held_out_loss", _refuse)
    assert outer_curves.REPRODUCTION.run(tmp_path, "tiny", 3, False)["curves"] == results["curves"]


def test_bias_variance_tiny(tmp_path, monkeypatch):
    results = bias_variance.REPRODUCTION.run(tmp_path, "tiny", 3, False)
    assert results["verdict"] in base.VERDICTS
    for name in ("initial", "trained"):
        rows = results["variance"][name]
        assert [r["length"] for r in rows] == list(bias_variance.SETTINGS["tiny"]["lengths"])
        for r in rows:
            assert r["var_rp"] > 0 and r["var_es"] > 0 and 0 <= r["weight_es"] <= 1
        bias = results["bias"][name]
        assert bias[-1]["relative_error"] == 0.0 and bias[-1]["cosine"] == pytest.approx(1.0)
        assert all(np.isfinite(r["relative_error"]) for r in bias)
    assert len(results["logged"]["step"]) == bias_variance.SETTINGS["tiny"]["train_steps"]
    monkeypatch.setattr(bias_variance, "_per_sample", _refuse)
    again = bias_variance.REPRODUCTION.run(tmp_path, "tiny", 3, False)
    assert again["variance"] == results["variance"] and again["bias"] == results["bias"]
