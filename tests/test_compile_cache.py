"""The CLI's persistent compilation cache: where it lives, how it is turned off, that it is written."""

import os
import subprocess
import sys

from vograd import compile_cache

PROGRAM = """
import jax, jax.numpy as jnp
from vograd import compile_cache
print(compile_cache.enable(min_seconds=0.0))
print(float(jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((64, 64))).sum()))
"""


def _run(env_value):
    env = dict(os.environ, VOGRAD_COMPILE_CACHE=env_value)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_cache_is_written_and_reused(tmp_path):
    where = tmp_path / "xla"
    first = _run(str(where))
    assert first[0] == str(where)
    entries = sorted(p.name for p in where.iterdir())
    assert entries, "nothing was written to the cache"
    second = _run(str(where))
    assert second[1] == first[1]  # same result from the cached executable
    assert sorted(p.name for p in where.iterdir()) == entries  # a hit adds no entry


def test_cache_off_and_default(monkeypatch, tmp_path):
    for off in ("", "0"):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.cache_dir() is None and compile_cache.enable() is None
    monkeypatch.delenv(compile_cache.ENV)
    assert compile_cache.cache_dir().name == "xla"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a directory")
    assert compile_cache.enable() is None  # unusable: compile as before, never fail
