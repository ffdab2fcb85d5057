"""Toy unrolled systems with known answers, for testing and studying estimators."""

from vograd.tasks.toys.double_well import DoubleWell
from vograd.tasks.toys.influence_balancing import InfluenceBalancing
from vograd.tasks.toys.linear_quadratic import LinearQuadratic
from vograd.tasks.toys.lorenz import Lorenz, true_theta
from vograd.tasks.toys.momentum_1d import Momentum1D, final_loss, final_w
from vograd.tasks.toys.quadratic_learning_rate import QuadraticLearningRate, grad_norms

__all__ = [
    "DoubleWell",
    "InfluenceBalancing",
    "LinearQuadratic",
    "Lorenz",
    "Momentum1D",
    "QuadraticLearningRate",
    "final_loss",
    "final_w",
    "grad_norms",
    "true_theta",
]
