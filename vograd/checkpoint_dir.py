"""A directory of checkpoints: numbered files, rotation, the newest by recorded step,
stale temporaries of killed writers."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from vograd import checkpoint as ckpt
from vograd.checkpoint_header import CheckpointError

_NAME = re.compile(r"^checkpoint_(\d{9})\.vograd$")
# Temporaries: ".NAME.tmp-PID-RANDOM"; before: ".NAME.tmp-PID" (of the files named below).
_TMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{16}$")
_OLD_TMP = re.compile(
    r"^\.(?:checkpoint_\d{9}\.vograd|theta\.ckpt|config\.json|metrics\.jsonl)\.tmp-(\d+)$"
)


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Returns the file name of the checkpoint taken after ``step`` outer steps."""
    return Path(directory) / f"checkpoint_{int(step):09d}.vograd"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Returns ``[(step, path), ...]`` of the finished checkpoints, oldest first.

    Temporary files of interrupted writes are never listed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def verified_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Returns ``[(step, path), ...]`` of the checkpoints, oldest first, by the step
    recorded in each file's header (checksummed), not by its name.

    Raises `CheckpointError` listing every file whose header is unreadable or
    records another step than its name says (a stray file copied or renamed
    into the directory): resuming from such a set could restart from an old
    step and rotate the newer checkpoints away.
    """
    found, problems = [], []
    for named, path in list_checkpoints(directory):
        try:
            step = ckpt.read_step(path)
        except (CheckpointError, OSError) as e:
            problems.append(str(e))
            continue
        if step != named:
            problems.append(f"{path.name} records step {step}, its name says {named}")
        found.append((step, path))
    if problems:
        raise CheckpointError(
            f"inconsistent checkpoints in {directory}: " + "; ".join(problems)
            + "; move these files away to resume from the others"
        )
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Returns the newest checkpoint in ``directory`` by recorded step, or None
    (`CheckpointError` for an inconsistent set, see `verified_checkpoints`)."""
    found = verified_checkpoints(directory)
    return found[-1][1] if found else None


def save_to_directory(
    directory: str | os.PathLike,
    tree: Any,
    *,
    step: int,
    metadata: dict | None = None,
    keep: int | None = 2,
) -> Path:
    """Returns the path of a new checkpoint for ``step`` in ``directory``.

    Afterwards only the newest ``keep`` checkpoints up to ``step`` remain
    (None keeps all; files named with a later step are left alone); the new
    file is complete before any old one is deleted, so a kill at any point
    leaves at least one complete checkpoint. Stale temporary files from
    killed writers are removed.
    """
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be an int >= 1 or None, got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = ckpt.save_checkpoint(
        checkpoint_path(directory, step), tree, step=step, metadata=metadata
    )
    if keep is not None:
        older = [p for s, p in list_checkpoints(directory) if s < step]
        for old in older[: max(len(older) - (keep - 1), 0)]:
            old.unlink(missing_ok=True)
    remove_stale_temporaries(directory)
    return path


def remove_stale_temporaries(directory: str | os.PathLike, *, every_writer: bool = False) -> int:
    """Returns how many temporary files of killed writers were removed.

    Temporaries of `atomic_write` (``.NAME.tmp-PID-RANDOM``, and the older
    ``.NAME.tmp-PID`` of checkpoints, ``theta.ckpt``, ``config.json``,
    ``metrics.jsonl``) are removed when their writer process is gone or is
    this process, or whatever their writer when ``every_writer`` (the caller
    holds the directory's lock, `vograd.lock`, so no one else writes there).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for p in directory.iterdir():
        m = _TMP.match(p.name) or _OLD_TMP.match(p.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if not every_writer and pid != os.getpid() and _alive(pid):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True

