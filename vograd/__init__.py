"""vograd: gradient estimators for long unrolled computations."""

from vograd.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from vograd.estimators.base import Diagnostics, Estimator
from vograd.outer import outer_optimizer
from vograd.schedules import Constant, LinearCurriculum, Schedule, bucket
from vograd.system import UnrolledSystem
from vograd.train import TrainResult, train
from vograd.unroll import Particle, UnrollOutput, init_particle, unroll

__all__ = [
    "CheckpointError",
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
    "Estimator",
    "Particle",
    "UnrollOutput",
    "UnrolledSystem",
    "init_particle",
    "unroll",
]
