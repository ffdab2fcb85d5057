"""Choosing on the training distribution: the Adam sweep behind the adaptive recipe's start rate."""

import numpy as np

from vograd.recipes.config import Problem
from vograd.recipes.validation import _scores, adam_sweep, rate_sweep
from vograd.tasks.optimizers import AdaptiveMLPOptimizer, MLPOptimizer


def test_adam_sweep_prefers_a_working_rate_on_real_data():
    problems = (Problem("mlp", "digits", hidden=(16,), batch_size=32),)
    result = adam_sweep(problems, horizon=60, lrs=[1e-5, 1e-2, 30.0], num_tasks=1, num_seeds=2,
                        progress=False)
    losses = {k: v[0] for k, v in result["losses"].items()}
    assert result["best"] == np.float32(1e-2).item()
    assert losses["0.01"] < 0.7 * losses["1e-05"]  # training happened at the chosen rate
    assert result["scores"]["0.01"] == 1.0  # best in the only family


def test_scores_are_ratios_to_the_best_and_a_divergence_never_wins():
    scores = _scores({"a": [1.0, 2.0], "b": [2.0, 2.0], "c": [float("nan"), 1.0]})
    assert scores["c"] == float("inf")
    # family 0: best 1.0 (a); family 1: best 1.0 (c)
    assert np.isclose(scores["a"], np.sqrt(2.0)) and np.isclose(scores["b"], 2.0)


def test_rate_sweep_finds_a_rate_too_small_and_refuses_other_optimizers():
    import jax
    import pytest

    problems = (Problem("mlp", "digits", hidden=(16,), batch_size=32),)
    lopt = AdaptiveMLPOptimizer(lr=1e-4)  # Adam at 1e-4 at init: far too slow for 60 steps
    theta = lopt.init_theta(jax.random.key(0))
    result = rate_sweep(lopt, theta, problems, horizon=60, factors=(1.0, 100.0), num_tasks=1,
                        num_seeds=2, progress=False)
    assert result["best"] == 100.0 and np.isclose(result["lr"], 1e-4)
    assert result["losses"]["100"][0] < 0.7 * result["losses"]["1"][0]
    with pytest.raises(ValueError, match="AdaptiveMLPOptimizer"):
        rate_sweep(MLPOptimizer(), None, problems, 60, (1.0,))
    with pytest.raises(ValueError, match="finite and > 0"):
        rate_sweep(lopt, theta, problems, 60, (0.0,))
