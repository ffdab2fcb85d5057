"""Outer-gradient estimators, one per file."""

from vograd.estimators.base import Diagnostics, Estimator

__all__ = ["Diagnostics", "Estimator"]
