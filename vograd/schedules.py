"""Truncation schedules: how many inner steps each outer update unrolls.

A schedule is a pure host-side rule ``window(step, key, steps_left) -> int``:
equal arguments give equal windows, and the only randomness (the jitter) is
drawn from ``key``, so a resumed run sees exactly the windows of an
uninterrupted one.

The outer loop compiles one estimator per *bucket* (``bucket(window)``: the
next power of two, in units of ``chunk``) and passes the exact window as the
dynamic ``length``, so a curriculum from 50 to 10,000 steps compiles about ten
sizes instead of thousands.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def clip_to_episode(window: int, steps_left: int | None) -> int:
    """Returns ``min(window, steps_left)`` (at least 1); ``window`` when
    ``steps_left`` is None.

    Metz et al. (2019) clip each window to the steps left in the episode so
    that a window never crosses an episode boundary.
    """
    if steps_left is None:
        return window
    if int(steps_left) < 1:
        raise ValueError(f"steps_left must be >= 1 or None, got {steps_left!r}")
    return max(1, min(window, int(steps_left)))


def bucket(
    window: int, *, chunk: int | None = None, maximum: int | None = None,
    minimum: int | None = None,
) -> int:
    """Returns the compiled window size for ``window``: ``chunk * 2^k``, the
    smallest such size >= ``window``, capped at ``maximum``.

    ``chunk`` (default 1) is the estimator's recomputation chunk; the bucket is
    always a multiple of it, as `vograd.unroll` requires. Windows of 50 to
    12,000 steps then fall into 9 buckets (64, ..., 16384) with ``chunk=None``;
    the padding slots are skipped at run time (a real ``lax.cond``).
    ``maximum`` (e.g. the episode horizon, which estimators do not let a window
    exceed) caps the bucket at its largest multiple of ``chunk``, when that
    still holds ``window``. ``minimum``: no bucket below ``bucket(minimum)``, so
    short windows (a curriculum's start, the ends of episodes) share one
    compilation; each costs ~20 s on a CPU for a learned optimizer, more than
    running a short window padded.
    """
    _check_int("window", window, 1)
    chunk = 1 if chunk is None else chunk
    _check_int("chunk", chunk, 1)
    if minimum is not None:
        _check_int("minimum", minimum, 1)
    num_chunks = -(-max(window, minimum or 1) // chunk)
    size = chunk * (1 << (num_chunks - 1).bit_length())
    if maximum is not None:
        _check_int("maximum", maximum, 1)
        cap = maximum // chunk * chunk
        if window <= cap < size:
            size = cap
    return size


class Schedule(eqx.Module):
    """A truncation schedule: the window length of each outer update."""

    @abc.abstractmethod
    def window(
        self, step: int, key: PRNGKeyArray | None = None, steps_left: int | None = None
    ) -> int:
        """Returns the window (number of inner steps, >= 1) of outer update ``step``."""

    @property
    @abc.abstractmethod
    def max_window(self) -> int:
        """Returns the largest window this schedule can return."""


class Constant(Schedule):
    """The same ``window`` at every outer update (clipped to the episode)."""

    window_length: int = eqx.field(static=True)

    def __init__(self, window: int):
        _check_int("window", window, 1)
        self.window_length = window

    def window(self, step, key=None, steps_left=None) -> int:
        """Returns ``min(window, steps_left)``."""
        _check_int("step", step, 0)
        return clip_to_episode(self.window_length, steps_left)

    @property
    def max_window(self) -> int:
        return self.window_length


class LinearCurriculum(Schedule):
    """Window growing linearly over outer updates, with multiplicative jitter.

    Metz et al. (2019): ``base(step) = start + (end - start) * min(step /
    num_steps, 1)`` (50 -> 10,000 over 5,000 updates), times ``u ~ U(1 -
    jitter, 1 + jitter)`` drawn from ``key``, rounded to the nearest int, at
    least 1, then clipped to ``steps_left``. With ``jitter=0`` the key may be
    None.
    """

    start: int = eqx.field(static=True, default=50)
    end: int = eqx.field(static=True, default=10_000)
    num_steps: int = eqx.field(static=True, default=5_000)
    jitter: float = eqx.field(static=True, default=0.2)

    def __check_init__(self):
        _check_int("start", self.start, 1)
        _check_int("end", self.end, 1)
        _check_int("num_steps", self.num_steps, 1)
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter < 1):
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")

    def base_window(self, step: int) -> float:
        """Returns the un-jittered window at outer update ``step``."""
        _check_int("step", step, 0)
        frac = min(step / self.num_steps, 1.0)
        return self.start + (self.end - self.start) * frac

    def window(self, step, key=None, steps_left=None) -> int:
        """Returns ``clip(round(base(step) * u), 1, steps_left)``."""
        base = self.base_window(step)
        if self.jitter:
            if key is None:
                raise ValueError("LinearCurriculum with jitter > 0 needs a PRNG key")
            u = jax.random.uniform(
                key, (), minval=1.0 - self.jitter, maxval=1.0 + self.jitter
            )
            base = base * float(u)
        return clip_to_episode(max(1, int(round(base))), steps_left)

    @property
    def max_window(self) -> int:
        return max(1, int(math.ceil(max(self.start, self.end) * (1 + self.jitter))))
