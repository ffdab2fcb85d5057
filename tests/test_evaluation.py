"""The evaluation protocol: per-task tuning picks the right learning rate, reports add up."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vograd.recipes import report
from vograd.recipes.evaluation import InnerSchedule, log_grid, selection_score, tune
from vograd.tasks.problems.base import TaskFamily


class ScalarQuadratic(TaskFamily):
    """f(w) = a w^2 with a per-task curvature a; plain SGD with lr = 1 / (2a) is exact in one step."""

    def sample(self, key):
        return jax.random.choice(key, jnp.array([0.5, 0.05]))

    def init_params(self, task, key):
        return jnp.ones(()) + 0.1 * jax.random.normal(key, ())

    def batch(self, task, key, split):
        return jnp.zeros(())

    def loss(self, params, task, batch):
        return task * params**2


def test_grid_selects_the_known_best_learning_rate():
    # SGD on a w^2 contracts by |1 - 2 a lr| per step. On the paper's grid
    # (11 values, 1e-4..10, a factor 10^0.5 apart) the best point is the one
    # closest to 1/(2a) in contraction: lr = 1 for a = 0.5 (exact), and
    # lr = 10 for a = 0.05 (contraction 0, exact again).
    family = ScalarQuadratic()
    tasks = jnp.array([0.5, 0.05])
    keys = jax.random.split(jax.random.key(0), 4).reshape(2, 2)
    grid = {"learning_rate": log_grid(1e-4, 10.0, 11)}
    tuned = tune(family, lambda h: optax.sgd(h["learning_rate"]), grid, tasks, keys, InnerSchedule(20, 5))
    np.testing.assert_allclose(np.asarray(grid["learning_rate"])[tuned.best], [1.0, 10.0], rtol=1e-5)
    # Exact one-step convergence: the loss after the first block is 0 (float32 rounding only).
    assert np.all(tuned.train[:, :, 1:] < 1e-10)


def test_diverged_runs_are_never_selected():
    curves = np.array([[[[1.0, np.nan]]], [[[5.0, 6.0]]]])  # [G=2, T=1, S=1, E=2]
    scores = selection_score(curves)
    assert scores[0, 0] == np.inf and scores[1, 0] == pytest.approx(5.5)


def test_inner_schedule_validation():
    with pytest.raises(ValueError, match="multiple"):
        InnerSchedule(10, 3)


def test_report_table_and_files(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.array([10, 20, 30])
    good = 1.0 + rng.random((4, 2, 3)) * 0.1  # [T, S, E]
    bad = good + np.array([1.0, 1.0, -0.5, 1.0])[:, None, None]  # reference loses task 2
    curves = {"learned": (good, good), "adam": (bad, bad)}
    rows = report.table(curves, {"learned": 1e-3, "adam": 5e-4}, "learned")
    adam = next(r for r in rows if r.name == "adam")
    assert adam.wins_train == pytest.approx(0.75)  # 3 of 4 tasks, by construction
    md = report.write_report(str(tmp_path), steps, curves, {"learned": 1e-3, "adam": 5e-4}, "learned", "t")
    assert "75%" in md
    for name in ("curves.png", "differences.png", "results.json", "report.md"):
        assert os.path.getsize(tmp_path / name) > 0


def test_sequential_grid_matches_the_vectorized_one():
    # lax.map over grid points, tasks and seeds (the conv path) computes the
    # same curves as vmap, on a real image task.
    from vograd.recipes.evaluation import grid_curves
    from vograd.tasks.problems import ImageMLPFamily

    family = ImageMLPFamily("fashion_mnist", "train", hidden=(8,), batch_size=16, downsample=2)
    tasks = jax.vmap(family.sample)(jax.random.split(jax.random.key(0), 2))
    keys = jax.random.split(jax.random.key(1), 4).reshape(2, 2)
    grid = {"learning_rate": jnp.array([1e-3, 1e-1, 3.0])}

    def make(h):
        return optax.adam(h["learning_rate"])

    curves = {
        sequential: grid_curves(family, make, grid, tasks, keys,
                                InnerSchedule(12, 4, 2, unroll=3, sequential=sequential))
        for sequential in (False, True)
    }
    for vectorized, mapped in zip(curves[False], curves[True]):
        assert vectorized.shape == (3, 2, 2, 3)
        # float32 reassociation only (vmap batches the dots differently).
        np.testing.assert_allclose(mapped, vectorized, rtol=2e-4, atol=1e-6)
    # The curves differ across learning rates (the test is not comparing constants).
    assert np.ptp(np.asarray(curves[True][0])[:, 0, 0, -1]) > 0.1
