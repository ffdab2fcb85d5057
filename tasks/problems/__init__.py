"""Inner-problem task families for learned-optimizer training."""

from tasks.problems.base import Batch, Params, Split, Task, TaskFamily
from tasks.problems.quadratic import QuadraticBatch, QuadraticFamily, QuadraticTask

__all__ = [
    "Batch",
    "Params",
    "QuadraticBatch",
    "QuadraticFamily",
    "QuadraticTask",
    "Split",
    "Task",
    "TaskFamily",
]
