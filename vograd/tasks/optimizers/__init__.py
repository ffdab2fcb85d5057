"""Learned optimizers (each an optax transformation once trained) and hand-designed baselines."""

from vograd.tasks.optimizers import baselines
from vograd.tasks.optimizers.adaptive_mlp import (
    AdaptiveMLPOptimizer,
    AdaptiveMLPState,
    AdaptiveMLPTheta,
)
from vograd.tasks.optimizers.base import LearnedOptimizer, OptState, Theta
from vograd.tasks.optimizers.hierarchical import (
    HierarchicalOptimizer,
    HierarchicalOptState,
    HierarchicalTheta,
)
from vograd.tasks.optimizers.lstm import LSTMOptimizer, LSTMOptState, LSTMTheta, preprocess_gradient
from vograd.tasks.optimizers.mlp import METZ_DECAYS, METZ_TAUS, MLPOptimizer, MLPOptState, MLPTheta

__all__ = [
    "AdaptiveMLPOptimizer",
    "AdaptiveMLPState",
    "AdaptiveMLPTheta",
    "HierarchicalOptState",
    "HierarchicalOptimizer",
    "HierarchicalTheta",
    "LSTMOptState",
    "LSTMOptimizer",
    "LSTMTheta",
    "LearnedOptimizer",
    "METZ_DECAYS",
    "METZ_TAUS",
    "MLPOptState",
    "MLPOptimizer",
    "MLPTheta",
    "OptState",
    "Theta",
    "baselines",
    "preprocess_gradient",
]
