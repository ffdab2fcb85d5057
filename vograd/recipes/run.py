"""Training and evaluating a recipe into a run directory.

A run directory holds ``config.json`` (recipe, preset, seed, the full typed
config, its estimator and optimizer as ``{"class", "fields"}``; a config of
the first format is read through `Recipe.migrate`), ``checkpoints/``
(resumable, atomic), ``metrics.jsonl`` (one line per outer step),
``theta.ckpt`` (the trained optimizer, no pickle), ``training.png`` and,
after evaluation, ``eval/`` with the report and plots.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path

import jax
import numpy as np

import vograd
from vograd import metrics, plotting
from vograd.recipes import config as cfg
from vograd.recipes import overrides as ovr
from vograd.recipes import registry, validate
from vograd.recipes.errors import UsageError
from vograd import checkpoint
from vograd.guards import check_seed
from vograd.train import TrainResult

log = logging.getLogger(__name__)


def _write_config(out: Path, recipe: str, preset: str | None, seed: int, config,
                  extra: dict) -> None:
    record = {"recipe": recipe, "preset": preset, "seed": seed, **extra,
              "config": cfg.to_dict(config)}
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        try:  # compared as configs: fields added since the run was started take their defaults
            old_config = type(config).from_json(old.get("config", {}))
        except (TypeError, ValueError):
            old_config = None
        if [old.get(k) for k in ("recipe", "preset", "seed")] != [recipe, preset, seed] or (
            old_config != config
        ):
            raise UsageError(
                f"{out} already holds a run with a different configuration "
                f"({old.get('recipe')}, preset {old.get('preset')}, seed {old.get('seed')}); "
                "use another --out directory"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(path, json.dumps(record, indent=2).encode())


def read_run(out_dir: str | os.PathLike):
    """Returns ``(recipe_class, config, record)`` of an existing run directory; a config of
    the first format (string estimator, optimizer settings as fields) is migrated."""
    path = Path(out_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} is not a run directory (no config.json)")
    try:
        record = json.loads(path.read_text())
        recipe = registry.get(record["recipe"])
        return recipe, recipe.from_json(record["config"]), record
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        raise UsageError(f"{path} is not a readable vograd run configuration: {err}") from err


def train(recipe: str, config, out_dir: str | os.PathLike, *, seed: int = 0,
          preset: str | None = None, progress: bool = True, tensorboard: bool = False,
          log=(), ablation: str | None = None, overrides: dict | None = None) -> TrainResult:
    """Returns the result of outer-training ``config``; resumes if ``out_dir`` holds a checkpoint.

    ``out_dir`` must be new, empty or a run (`validate.check_run_dir`); ``seed``
    in ``[0, 2**32)`` (`vograd.guards.check_seed`), checked before anything is
    written. ``ablation`` and ``overrides`` (`overrides.diff` of the config
    against its preset) are recorded in ``config.json`` for the record.
    Metrics go to ``out_dir/metrics.jsonl``, to TensorBoard event files in
    ``out_dir/tensorboard/`` if ``tensorboard`` (the ``tensorboard`` extra),
    and to the extra writers or callbacks in ``log`` (`vograd.metrics`).
    """
    seed = check_seed(seed)
    if type(config) is not registry.get(recipe):
        raise TypeError(f"recipe {recipe!r} trains a {registry.get(recipe).__name__}, "
                        f"got a {type(config).__name__}")
    out = validate.check_run_dir(out_dir)
    validate.check_seed(seed)
    extra = {"ablation": ablation, "overrides": overrides or {}}
    _write_config(out, recipe, preset, seed, config, extra)
    system = config.system("train")
    initial = config.initial_theta()
    result = vograd.train(
        system,
        config.estimator,
        config.outer_optimizer(),
        config.outer_steps,
        jax.random.key(seed),
        schedule=config.truncation.schedule(),
        checkpoint_dir=out / "checkpoints",
        checkpoint_every=config.checkpoint_every,
        log=[out / "metrics.jsonl", *([metrics.TensorBoard(out / "tensorboard")] if tensorboard else []),
             *metrics.writers(log)],
        min_bucket=config.truncation.min_bucket,
        progress=progress,
        theta=initial,
    )
    checkpoint.save_checkpoint(
        out / "theta.ckpt", result.theta, step=result.step,
        metadata={"recipe": recipe, "optimizer": type(config.optimizer).__name__},
    )
    plot_training(out)
    return result


def load_theta(out_dir: str | os.PathLike):
    """Returns ``(learned_optimizer, theta)`` of a trained run directory."""
    _, config, record = read_run(out_dir)
    lopt = config.optimizer
    template = lopt.init_theta(jax.random.key(0))
    path = Path(out_dir) / "theta.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (vograd train ...)")
    theta, _ = checkpoint.load_checkpoint(path, template)
    return lopt, theta


def export(out_dir: str | os.PathLike, name: str, dest: str | os.PathLike | None = None, *,
           force: bool = False) -> Path:
    """Returns the file written: a trained run's theta as ``vograd.tasks.pretrained`` entry ``name``.

    Written to ``dest``, by default `vograd.tasks.pretrained.user_directory`
    (never into the installed package). An existing file is replaced only with
    ``force``; the names of the shipped optimizers are refused there and in the
    package's directory (another ``dest`` may hold one: that is how a
    maintainer remakes a shipped file, then copies it in). The header
    records the optimizer spec and how the weights were made: recipe, preset,
    seed, outer steps, the full config and the command, written with today's
    flags (the config against today's preset), so that it runs as written.
    """
    from vograd.tasks import pretrained

    validate.check_name(name)
    directory = Path(dest) if dest is not None else pretrained.user_directory()
    if name in pretrained.shipped_names() and (
            dest is None or directory.resolve() == pretrained.DIRECTORY.resolve()):
        raise UsageError(f"{name!r} is an optimizer shipped with vograd and cannot be replaced "
                         "(a user entry of that name would never load: the shipped one comes "
                         "first); choose another name")
    file = directory / f"{name}{pretrained.SUFFIX}"
    if file.exists() and not force:
        raise UsageError(f"{file} already exists; pass --force to replace it")
    _, config, record = read_run(out_dir)
    lopt, theta = load_theta(out_dir)
    step = checkpoint.read_header(Path(out_dir) / "theta.ckpt")["step"]
    flags = f" --preset {record['preset']}" if record.get("preset") else ""
    flags += f" --ablation {record['ablation']}" if record.get("ablation") else ""
    changes = record.get("overrides") or {}
    if record.get("preset"):  # today's flags: a run's record names those of its own format
        from vograd.recipes.train_command import preset_overrides

        changes = preset_overrides(record["recipe"], record["preset"], record.get("ablation"),
                                   config)
    flags += "".join(f" {shlex.quote(a)}" for a in ovr.as_flags(changes))
    metadata = {
        "recipe": record["recipe"], "preset": record.get("preset"), "seed": record["seed"],
        "outer_steps": step, "config": cfg.to_dict(config),
        "command": f"vograd train {record['recipe']}{flags} --seed {record['seed']} --out RUN_DIR",
    }
    directory.mkdir(parents=True, exist_ok=True)
    return pretrained.save(file, lopt, theta, step=step, metadata=metadata)


def read_metrics(out_dir: str | os.PathLike) -> list[dict]:
    """Returns the metrics.jsonl records of a run (one per outer step)."""
    path = Path(out_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(out_dir: str | os.PathLike):
    """Returns the figure written to training.png (None without matplotlib or metrics): outer
    loss (and its running mean) against outer step and against wall-clock seconds, and the
    window against outer step."""
    rows = read_metrics(out_dir)
    fig = plotting.new_figure(figsize=(15, 4)) if rows else None
    if fig is None:
        return None
    step = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] if r["loss"] is not None else np.nan for r in rows], float)
    window = np.array([r.get("window") or np.nan for r in rows], float)
    # Summed step times: wall-clock seconds of training, across resumes (each call's
    # wall_time starts again at 0).
    wall = np.cumsum([r.get("step_time", np.nan) for r in rows])
    k = max(1, len(loss) // 20)
    smooth = np.convolve(np.nan_to_num(loss, nan=np.nanmean(loss)), np.ones(k) / k, mode="valid")
    a, w, b = fig.subplots(1, 3)
    for ax, x, xlabel in ((a, step, "outer step"),
                          (w, wall, "wall-clock seconds (sum of outer step times)")):
        ax.plot(x, loss, color="#1f77b4", alpha=0.3, label="outer loss")
        ax.plot(x[k - 1:], smooth, color="#1f77b4", label=f"running mean ({k})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean inner loss over the window")
        ax.grid(alpha=0.3)
    a.legend()
    b.plot(step, window, color="#2ca02c")
    b.set_xlabel("outer step")
    b.set_ylabel("window (inner steps)")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(Path(out_dir) / "training.png", dpi=100)
    return fig
