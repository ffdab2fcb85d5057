"""The learned-optimizer cost benchmarks: sane, consistent figures, no timing thresholds."""

from __future__ import annotations

import math

import jax
import optax
import pytest

from vograd.benchmarks.optimizer import cnn_step, update
from vograd.benchmarks.speed import common
from vograd.tasks.optimizers import MLPOptimizer


def test_cnn_step_times_every_shipped_optimizer_against_adam():
    rows = cnn_step.run(families=("small-cnn",), num_steps=2, rounds=1)
    assert [r["optimizer"] for r in rows][0] == "adam"
    assert {r["optimizer"] for r in rows} >= {"adam", "adaptive", "metz2019-small"}
    assert rows[0]["ratio"] == 1.0 and rows[0]["min_ratio"] == 1.0
    for r in rows:
        assert r["family"] == "small-cnn" and r["num_params"] == rows[0]["num_params"] > 0
        assert math.isfinite(r["step_s"]) and r["step_s"] > 0 and r["compile_s"] > 0
        assert r["ratio"] == pytest.approx(r["step_s"] / rows[0]["step_s"])
    assert "| small-cnn |" in cnn_step.format_table(rows)


def test_cnn_step_rejects_an_unknown_family():
    with pytest.raises(ValueError, match="unknown families"):
        cnn_step.run(families=("vgg",))


def test_flop_counts_behind_the_bound_table():
    # The bound is XLA's FLOP count over the matmul peak: the per-parameter MLP must count
    # tens of times Adam's elementwise work, and Adam about a dozen FLOPs per parameter.
    params = update.mlp_params(jax.random.key(0))
    grads = jax.tree.map(lambda p: 0.1 * p + 0.01, params)
    n = sum(x.size for x in jax.tree.leaves(params))
    per_param = {}
    for name, opt in {"adam": optax.adam(1e-3),
                      "mlp": MLPOptimizer(fused_forward=True).as_optax(
                          MLPOptimizer(fused_forward=True).init_theta(jax.random.key(1)))}.items():
        state = opt.init(params)
        per_param[name] = common.flops_of(lambda g, s, p, o=opt: o.update(g, s, p),
                                          (grads, state, params)) / n
    assert 5 < per_param["adam"] < 40
    assert per_param["mlp"] > 20 * per_param["adam"]


def test_bound_table_divides_the_scan_time_by_the_bound():
    row = {"optimizer": "x", "update_flops": 2e6, "flops_per_param": 160.0, "bound_us": 10.0,
           "update_scan_us": 80.0, "update_scan_bound_ratio": 8.0,
           "update_scan_min_bound_ratio": 7.5, "update_scan_ratio": 2.5}
    line = update.format_bound_table([row]).splitlines()[-1]
    assert line.split(" | ")[1:] == ["2,000,000", "160", "10.0", "80", "8.0x", "7.5x", "2.5x |"]
