"""A persistent XLA compilation cache for the command line.

Outer training and evaluation are dominated by compiles on a CPU (10-20 s per
estimator configuration, minutes for a joint task mix). JAX can keep compiled
executables on disk and reuse them when the same program is compiled again,
in a later process: a second ``make demo`` or a resumed ``vograd train`` then
skips them. The CLI turns the cache on (library users decide for themselves:
importing vograd changes no JAX setting).

Where: ``$VOGRAD_COMPILE_CACHE`` if set (an empty value or ``0`` turns the
cache off), else ``platformdirs.user_cache_dir("vograd")/xla``. Programs that
compile in under ``min_seconds`` are not written.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "VOGRAD_COMPILE_CACHE"


def cache_dir() -> Path | None:
    """Returns the cache directory the CLI uses, or None when ``$VOGRAD_COMPILE_CACHE`` is
    empty or ``0``."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip() in ("", "0") else Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vograd")) / "xla"


def enable(min_seconds: float = 1.0) -> Path | None:
    """Turns JAX's persistent compilation cache on at `cache_dir` (idempotent); returns the
    directory, or None when it is off or cannot be created (then nothing changes)."""
    import jax

    where = cache_dir()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile as before rather than fail
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return where


__all__ = ["ENV", "cache_dir", "enable"]
