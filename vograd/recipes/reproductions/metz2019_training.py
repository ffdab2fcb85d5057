"""Outer-training a Metz 2019 config into a run directory, compiling once per config.

`vograd.recipes.run.train` builds a fresh outer optimizer per call; optax
transformations are closures, static to `vograd.train`'s jitted step, so each
call recompiles (~30-40 s for a learned optimizer on a loaded 2-core CPU,
more than a reproduction's whole run of one seed). Here the system, estimator
and outer optimizer are memoized per (hashable, frozen) config, so the seeds
of one arm share one compilation. The run directory is the same as
`vograd.recipes.run.train`'s (``config.json``, ``checkpoints/``,
``metrics.jsonl``, ``theta.ckpt``), so `vograd.recipes.run.load_theta` and
`vograd.recipes.run.read_metrics` read it.

``num_steps`` below ``config.outer_steps`` trains only that far (a resumable
segment: the next call continues from the checkpoint), which is how the
outer-training curves evaluate theta along the way.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax

import vograd
import vograd.outer
from vograd import checkpoint
from vograd.recipes import config as cfg
from vograd.recipes.reproductions import common
from vograd.recipes import metz2019


@functools.lru_cache(maxsize=None)
def _outer(learning_rate: float, b1: float, clip_value: float):
    """Returns one outer optimizer object per setting (a new closure would recompile)."""
    return vograd.outer.outer_optimizer(learning_rate, b1=b1, clip_value=clip_value)


@functools.lru_cache(maxsize=None)
def _pieces(config: metz2019.Metz2019):
    """Returns ``(system, estimator, outer optimizer)`` of ``config``, the optimizer shared
    by every config with its settings, so that `vograd.train`'s jitted step hits its
    cache across seeds and across arms that differ only in their schedule."""
    return (config.system("train"), config.estimator,
            _outer(config.outer_lr, config.outer_b1, config.clip_value))


def initial_theta(config: metz2019.Metz2019, seed: int):
    """Returns theta at outer step 0 of seed ``seed``: `vograd.train` draws it from
    ``split(split(key(seed))[0])[0]``."""
    k_init, _ = jax.random.split(jax.random.key(seed))
    k_theta, _ = jax.random.split(k_init)
    return _pieces(config)[0].init_theta(k_theta)


def train(config: metz2019.Metz2019, run_dir: str | Path, seed: int, *,
          num_steps: int | None = None, ablation: str | None = None):
    """Returns theta after ``num_steps`` (default ``config.outer_steps``) outer steps of
    seed ``seed``, resuming from ``run_dir``'s checkpoint; writes ``theta.ckpt``."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"recipe": "metz2019", "preset": None, "seed": seed, "ablation": ablation,
              "overrides": {}, "config": cfg.to_dict(config)}
    path = out / "config.json"
    # Compared as configs: a run directory of the first format reads migrated.
    if path.exists() and metz2019.Metz2019.from_json(
            json.loads(path.read_text())["config"]) != config:
        raise ValueError(f"{out} holds a run of another configuration; use another directory")
    common.write_json(path, record, indent=2)
    system, estimator, optimizer = _pieces(config)
    steps = config.outer_steps if num_steps is None else num_steps
    result = vograd.train(
        system, estimator, optimizer, steps, jax.random.key(seed),
        schedule=config.truncation.schedule(), checkpoint_dir=out / "checkpoints",
        checkpoint_every=config.checkpoint_every, log=out / "metrics.jsonl",
        min_bucket=config.truncation.min_bucket, progress=False,
    )
    checkpoint.save_checkpoint(out / "theta.ckpt", result.theta, step=result.step,
                               metadata={"recipe": "metz2019", "optimizer": "MLPOptimizer"})
    return result.theta


__all__ = ["initial_theta", "train"]
