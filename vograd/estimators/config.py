"""Validation of estimator configuration, with messages that name the problem.

Static checks run when an estimator is constructed (``__check_init__``); checks
that need the system (``window <= horizon``) run in ``init`` and ``estimate``
at trace time; the dynamic window ``length`` is checked at run time with
``eqx.error_if`` so a bad value under ``jit`` raises instead of computing garbage,
unless it comes as a `WindowLength`, checked on the host when it was made (what
`vograd.train` passes: a run-time check is a host callback, and a program with
one is never written to JAX's persistent compilation cache).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Int

from vograd.system import UnrolledSystem
from vograd.unroll import WindowLength

WEIGHTINGS = ("per_element", "total")


def check_count(name: str, value: int, minimum: int, why: str = "") -> None:
    """Raises a ValueError unless ``value`` is an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{reason}, got {value!r}")


def check_sigma(sigma: float) -> None:
    """Raises a ValueError unless the smoothing scale is a positive finite number."""
    if not (isinstance(sigma, (int, float)) and 0 < sigma < float("inf")):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")


def check_window(window: int | None, chunk: int | None, burn_in: int = 0) -> None:
    """Raises a ValueError for a bad static window, chunk or burn-in."""
    if window is not None:
        check_count("window", window, 1)
    if chunk is not None:
        check_count("chunk", chunk, 1)
        if window is not None and window % chunk:
            raise ValueError(f"chunk ({chunk}) must divide window ({window})")
    check_count("burn_in", burn_in, 0)
    if burn_in and window is None:
        raise ValueError(
            "burn_in needs a truncated estimator (window=int): full episodes start "
            "fresh at every estimate, so there is no stale state to burn in"
        )


def check_weighting(weighting: str) -> None:
    """Raises a ValueError unless ``weighting`` is a known merge rule."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")


def resolve_window(window: int | None, chunk: int | None, system: UnrolledSystem) -> int:
    """Returns the compiled window size: ``window``, or the horizon for full episodes.

    Raises a ValueError when the window exceeds the system's horizon (a window
    would then hold more than one episode end) or a chunk does not divide it.
    """
    horizon = system.horizon
    check_count("system.horizon", horizon, 1)
    if window is None:
        if chunk is not None and horizon % chunk:
            raise ValueError(
                f"chunk ({chunk}) must divide the horizon ({horizon}) of a full-episode estimator"
            )
        return horizon
    if window > horizon:
        raise ValueError(f"window ({window}) must be <= the system's horizon ({horizon})")
    return window


Length = int | Int[Array, ""] | WindowLength | None


def window_length(length: int, window: int) -> WindowLength:
    """Returns ``length`` as a `WindowLength` after checking ``1 <= length <= window`` here."""
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= window:
        raise ValueError(f"length must be an int in [1, window={window}], got {length!r}")
    return WindowLength(jnp.asarray(length, jnp.int32))


def check_length(length: Length, window: int) -> Int[Array, ""]:
    """Returns ``length`` (default ``window``) as an int32 scalar, checked in ``[1, window]``.

    A Python int is checked at once; a traced value is checked at run time.
    """
    if length is None:
        return jnp.asarray(window, jnp.int32)
    if isinstance(length, WindowLength):
        return length.value
    if isinstance(length, int) and not isinstance(length, bool):
        if not 1 <= length <= window:
            raise ValueError(f"length must be in [1, window={window}], got {length}")
        return jnp.asarray(length, jnp.int32)
    length = jnp.asarray(length, jnp.int32)
    if length.shape != ():
        raise ValueError(f"length must be a scalar, got shape {length.shape}")
    return eqx.error_if(
        length, (length < 1) | (length > window), f"length must be in [1, window={window}]"
    )
