"""Figures for reports: optional matplotlib, its object API, one colour per name.

matplotlib is an optional dependency (``pip install "vograd[plots]"``): every
command writes its numbers (JSON, markdown) first and then asks `new_figure`
for a figure, which returns None, with one warning per process, when
matplotlib is not installed. Figures are built with
``matplotlib.figure.Figure`` and saved with ``Figure.savefig``: no pyplot and
no global backend switch, so a notebook's inline backend is left alone (and a
returned `Figure` shows inline there once that backend is on).

`color` gives every optimizer (or estimator, or ablation) the same colour in
every figure: a fixed table for the names the recipes use, and a stable hash
of the name into the rest of the palette for any other name.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np

# Tableau colours (matplotlib's default cycle), fixed per name.
COLORS: dict[str, str] = {
    "learned": "#d62728",  # red: the optimizer under test stands out
    "adam": "#1f77b4",
    "rmsprop": "#ff7f0e",
    "sgd_momentum": "#2ca02c",
    "adam_reg_decay": "#9467bd",
    "sgd": "#8c564b",
}
_OTHERS = ("#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31",
           "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")

_warned = False


def color(name: str) -> str:
    """Returns the colour of ``name``: `COLORS`' entry, or a stable pick from the rest."""
    if name in COLORS:
        return COLORS[name]
    return _OTHERS[zlib.crc32(name.encode()) % len(_OTHERS)]


def new_figure(**kwargs: Any):
    """Returns a ``matplotlib.figure.Figure(**kwargs)``, or None when matplotlib is absent.

    The first call without matplotlib warns (once per process) that plots are
    skipped; callers then return without drawing.
    """
    global _warned
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned:
            _warned = True
            warnings.warn(
                "matplotlib is not installed: plots are skipped (numbers and reports are "
                'written); pip install "vograd[plots]" to get them',
                stacklevel=3,
            )
        return None
    return Figure(**kwargs)


def band(ax, x: np.ndarray, curves: np.ndarray, name: str, *, label: str | None = None) -> None:
    """Draws the median over the leading axes of ``curves`` ``[..., E]`` against ``x`` ``[E]``,
    with its 25-75 percentile band: a light fill edged by thin lines of the same colour, so
    overlapping bands stay readable. Non-finite values (diverged runs) are left out."""
    flat = np.asarray(curves, np.float64).reshape(-1, np.shape(curves)[-1])
    flat = np.where(np.isfinite(flat), flat, np.nan)
    with warnings.catch_warnings():  # an all-NaN column (every run diverged) is just a gap
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, mid, hi = np.nanpercentile(flat, [25, 50, 75], axis=0)
    c = color(name)
    ax.fill_between(x, lo, hi, color=c, alpha=0.12, lw=0)
    ax.plot(x, lo, color=c, lw=0.6, alpha=0.6)
    ax.plot(x, hi, color=c, lw=0.6, alpha=0.6)
    ax.plot(x, mid, color=c, lw=1.8, label=name if label is None else label, zorder=3)
