"""vograd: gradient estimators for long unrolled computations."""

from vograd.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from vograd.estimators import (
    Diagnostics,
    ESSingle,
    Estimator,
    EstimatorState,
    EvolutionStrategies,
    FullBackprop,
    FullES,
    Merged,
    NoiseReuseES,
    PersistentES,
    PESState,
    PopulationState,
    Reparameterization,
    Samples,
    TruncatedBackprop,
)
from vograd.interrupt import TrainingInterrupted
from vograd.joint import JointSystem
from vograd.lock import DirectoryLockedError
from vograd.outer import outer_optimizer
from vograd.schedules import Constant, LinearCurriculum, Schedule, bucket
from vograd.system import UnrolledSystem
from vograd.train import TrainResult, train
from vograd.unroll import Particle, UnrollOutput, init_particle, unroll

__all__ = [
    "CheckpointError",
    "DirectoryLockedError",
    "JointSystem",
    "TrainingInterrupted",
    "Constant",
    "LinearCurriculum",
    "Schedule",
    "TrainResult",
    "bucket",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "outer_optimizer",
    "read_header",
    "save_checkpoint",
    "train",
    "Diagnostics",
    "ESSingle",
    "Estimator",
    "EstimatorState",
    "EvolutionStrategies",
    "FullBackprop",
    "FullES",
    "Merged",
    "NoiseReuseES",
    "PESState",
    "PersistentES",
    "PopulationState",
    "Reparameterization",
    "Samples",
    "TruncatedBackprop",
    "Particle",
    "UnrollOutput",
    "UnrolledSystem",
    "init_particle",
    "unroll",
]
