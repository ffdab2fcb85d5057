"""Choosing on the training distribution: the Adam sweep behind the adaptive recipe's start rate."""

import numpy as np

from vograd.recipes.config import Problem
from vograd.recipes.validation import _scores, adam_sweep


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
