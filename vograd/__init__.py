"""vograd: gradient estimators for long unrolled computations."""

from vograd.estimators.base import Diagnostics, Estimator
from vograd.system import UnrolledSystem
from vograd.unroll import Particle, UnrollOutput, init_particle, unroll

__all__ = [
    "Diagnostics",
    "Estimator",
    "Particle",
    "UnrollOutput",
    "UnrolledSystem",
    "init_particle",
    "unroll",
]
