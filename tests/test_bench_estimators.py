"""Smoke run of the estimator-quality benchmark (`vograd.benchmarks.estimators.run`, quick
sizes), checking its outputs and the physics its numbers must show."""

import json

import jax
import numpy as np
import pytest

from vograd.benchmarks.estimators import run as estimators
from vograd.tasks.toys import QuadraticLearningRate


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_estimators")
    report = estimators.main(out_dir=out, quick=True)
    return out, report, json.loads((out / "estimators.json").read_text())


def test_writes_report_json_and_pngs(quick_run):
    out, report, results = quick_run
    assert (out / "estimators.md").read_text() == report
    for heading in ("Full-episode estimators", "Truncated estimators", "Fig. 4", "Fig. 3"):
        assert heading in report
    for name in ("fig2_momentum_landscape", "fig3_truncation_bias", "fig4_variance"):
        data = (out / f"{name}.png").read_bytes()
        # A real PNG with drawn content (an empty 110-dpi figure is ~5 kB).
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
    assert results["quick"] is True


def _row(rows, system, estimator, **match):
    (row,) = [
        r for r in rows
        if r["system"] == system and r["estimator"] == estimator
        and all(r[k] == v for k, v in match.items())
    ]
    return row


def test_unbiased_estimators_match_the_closed_form(quick_run):
    rows = quick_run[2]["full"]
    for name in ("Reparameterization", "FullES", "Merged"):
        row = _row(rows, "QuadraticLearningRate", name, horizon=10)
        # Unbiased for the smoothed gradient: within 4 standard errors of the
        # closed form (320 samples; the T = 10 distribution is not heavy-tailed).
        assert row["error"] < 4 * row["error_se"], row
        assert row["cosine"] == pytest.approx(1.0)
    # FullBackprop on a deterministic system is exactly the plain gradient
    # (float64 autodiff vs the float64 polynomial), and zero variance up to rounding.
    row = _row(rows, "QuadraticLearningRate", "FullBackprop", horizon=10)
    with jax.enable_x64(True):  # as the benchmark: a = 4.2 exactly, not its float32 rounding
        plain = QuadraticLearningRate(horizon=10, a=[0.5, 1.0, 4.2], w0=[1.0] * 3).true_grad(0.5)
    np.testing.assert_allclose(row["mean"][0], plain, rtol=1e-9)
    assert row["variance"] < 1e-12 * plain**2
    # Timings were measured: positive, and far below a second for a toy estimate.
    assert all(0 < r["seconds"] < 10 for r in rows)


def test_truncated_backprop_is_biased_on_influence_balancing_and_pes_is_not(quick_run):
    results = quick_run[2]
    tbptt = _row(results["truncated"], "InfluenceBalancing", "TruncatedBackprop", window=10)
    pes = _row(results["truncated"], "InfluenceBalancing", "PersistentES", window=10)
    # Deterministic particles: the measured mean IS the closed-form truncated
    # gradient (-1.776 against the true +35.72: the wrong sign).
    expected = results["training"]["tbptt_grad_at_theta0"]["10"]
    np.testing.assert_allclose(tbptt["mean"][0], expected, rtol=1e-9)
    assert tbptt["cosine"] == -1.0 and tbptt["relative_error"] > 1.0
    # PES is unbiased: within 4 se of the closed form, and far closer than TBPTT.
    assert pes["error"] < 4 * pes["error_se"]
    assert pes["error"] < tbptt["error"] / 3


def test_reparameterization_variance_explodes_on_lorenz_while_es_stays_flat(quick_run):
    points = quick_run[2]["sweeps"]["Lorenz"]
    short, long = points[0], points[-1]
    assert (short["horizon"], long["horizon"]) == (100, 1000)
    # T = 100: g_rp ~7 orders of magnitude below g_es (measured 1e-7), so the
    # merge trusts g_rp; T = 1000: chaos multiplies g_rp's variance by ~1e9
    # (measured ratio rp/es ~1.5e3) while g_es, bounded by the loss range, stays
    # within a factor 10 of where it was.
    assert short["variance_rp"] < 1e-4 * short["variance_es"]
    assert long["variance_rp"] > 100 * long["variance_es"]
    assert long["variance_rp"] > 1e6 * short["variance_rp"]
    assert 0.1 < long["variance_es"] / short["variance_es"] < 10
    assert short["weight_rp"] > 0.99 and long["weight_rp"] < 0.5


def test_outer_training_pes_finds_the_optimum_and_short_truncation_does_not(quick_run):
    training = quick_run[2]["training"]
    theta_star = training["theta_star"]
    runs = training["runs"]
    # PES (32 pairs) converges to theta* = -0.047; its Adam(0.01) jitter is ~0.01
    # (measured final -0.045).
    assert abs(runs["PersistentES W=10"]["final_theta"] - theta_star) < 0.03
    # TBPTT W=10 follows a gradient of the wrong sign: theta grows from 0.5.
    assert runs["TruncatedBackprop W=10"]["final_theta"] > 0.5
