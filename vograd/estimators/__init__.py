"""Outer-gradient estimators, one per file."""

from vograd.estimators.base import Diagnostics, Estimator
from vograd.estimators.evolution_strategies import EvolutionStrategies
from vograd.estimators.full import FullBackprop, FullES
from vograd.estimators.merged import Merged
from vograd.estimators.persistent_es import PersistentES, PESState
from vograd.estimators.population import PopulationState, Replay
from vograd.estimators.reduce import Samples
from vograd.estimators.reparameterization import Reparameterization
from vograd.estimators.truncated_backprop import TruncatedBackprop
from vograd.estimators.windowed import WindowedEstimator

__all__ = [
    "Diagnostics",
    "Estimator",
    "EvolutionStrategies",
    "FullBackprop",
    "FullES",
    "Merged",
    "PESState",
    "PersistentES",
    "PopulationState",
    "Replay",
    "Reparameterization",
    "Samples",
    "TruncatedBackprop",
    "WindowedEstimator",
]
