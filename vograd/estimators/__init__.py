"""Outer-gradient estimators, one per file."""

from vograd.estimators.base import Diagnostics, Estimator, EstimatorState
from vograd.estimators.es_single import ESSingle, ESSingleState
from vograd.estimators.evolution_strategies import EvolutionStrategies
from vograd.estimators.full import FullBackprop, FullES
from vograd.estimators.merged import Merged
from vograd.estimators.noise_reuse_es import NoiseReuseES, NoiseReuseState
from vograd.estimators.online_es import OnlineES
from vograd.estimators.persistent_es import PersistentES, PESState
from vograd.estimators.population import PopulationState, Replay
from vograd.estimators.reduce import Samples
from vograd.estimators.reparameterization import Reparameterization
from vograd.estimators.sampled import SampledEstimator
from vograd.estimators.truncated_backprop import TruncatedBackprop
from vograd.estimators.windowed import SmoothedEstimator, WindowedEstimator

__all__ = [
    "Diagnostics",
    "ESSingle",
    "ESSingleState",
    "Estimator",
    "EstimatorState",
    "EvolutionStrategies",
    "FullBackprop",
    "FullES",
    "Merged",
    "NoiseReuseES",
    "NoiseReuseState",
    "OnlineES",
    "PESState",
    "PersistentES",
    "PopulationState",
    "Replay",
    "Reparameterization",
    "SampledEstimator",
    "Samples",
    "SmoothedEstimator",
    "TruncatedBackprop",
    "WindowedEstimator",
]
