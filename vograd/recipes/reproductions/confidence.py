"""Confidence intervals for the reproductions' few-seed means and paired differences.

With 3-5 seeds a bootstrap interval is too narrow (it cannot be wider than the
range of the resample means), so means get Student-t intervals:
``mean +- t_{n-1, (1+level)/2} * sd / sqrt(n)``. A paired comparison (arm ``b``
against reference ``a``, seed by seed) is the t-interval of ``d_s = b_s - a_s``.
Non-finite values (a diverged run) are not averaged: they are counted, and the
interval is None when fewer than two finite values remain.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float
from scipy import stats


def mean_interval(values: Float[np.ndarray, " n"] | list[float], level: float = 0.95) -> dict:
    """Returns ``{"mean", "low", "high", "sd", "n", "non_finite"}`` for the finite ``values``.

    ``low``/``high``: the two-sided Student-t interval at ``level`` (None with
    fewer than two finite values; equal to the mean when all are equal).
    """
    v = np.asarray([np.nan if x is None else x for x in values], np.float64)
    finite = v[np.isfinite(v)]
    out = {"n": int(finite.size), "non_finite": int(v.size - finite.size),
           "mean": None, "sd": None, "low": None, "high": None}
    if finite.size == 0:
        return out
    mean = float(np.mean(finite))
    out["mean"] = mean
    if finite.size < 2:
        return out
    sd = float(np.std(finite, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, finite.size - 1)) * sd / math.sqrt(finite.size)
    out.update(sd=sd, low=mean - half, high=mean + half)
    return out


def paired_difference(reference: list[float], arm: list[float], level: float = 0.95) -> dict:
    """Returns `mean_interval` of ``arm[s] - reference[s]`` over the seeds ``s`` where both
    are finite, plus ``"pairs"`` (how many) and ``"arm_diverged"`` (seeds where only the
    arm is non-finite: a failure the differences cannot show)."""
    a = np.asarray([np.nan if x is None else x for x in reference], np.float64)
    b = np.asarray([np.nan if x is None else x for x in arm], np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.size} reference values but {b.size} arm values")
    both = np.isfinite(a) & np.isfinite(b)
    out = mean_interval(b[both] - a[both], level)
    out["pairs"] = int(both.sum())
    out["arm_diverged"] = int((np.isfinite(a) & ~np.isfinite(b)).sum())
    return out


def excludes_zero(interval: dict) -> bool:
    """Returns True when the interval exists and lies entirely on one side of 0."""
    low, high = interval.get("low"), interval.get("high")
    return low is not None and high is not None and (low > 0 or high < 0)


def below_zero(interval: dict) -> bool:
    """Returns True when the interval exists and lies entirely below 0 (a claimed decrease
    the data support)."""
    high = interval.get("high")
    return high is not None and high < 0


def verdict(supported: list[bool]) -> str:
    """Returns "reproduced" when every sub-claim is supported, "partly" when some are,
    "not reproduced" when none is."""
    n = sum(bool(x) for x in supported)
    return "reproduced" if n == len(supported) else "partly" if n else "not reproduced"


def format_interval(interval: dict, digits: int = 3) -> str:
    """Returns ``"m [low, high]"`` (or ``"m"`` / ``"-"`` when the interval is missing)."""
    if interval.get("mean") is None:
        return "-"
    m = f"{interval['mean']:.{digits}f}"
    if interval.get("low") is None:
        return m
    return f"{m} [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"


__all__ = ["below_zero", "excludes_zero", "format_interval", "mean_interval", "paired_difference",
           "verdict"]
