"""Estimator quality on toy systems with known gradients: bias, variance, cost (`run` is the driver).

    vograd bench estimators [--quick] [--out DIR]   # = python -m vograd.benchmarks.estimators.run
"""
