"""Where `vograd.train` sends each outer step's metrics: JSON lines, TensorBoard, callbacks.

A metrics writer is anything with the `MetricsWriter` methods: ``start(step)``
once before the first record (``step``: the outer step training resumes from,
0 for a fresh run), ``write(record)`` for each outer step's metric dict, and
``close()`` at the end. `vograd.train`'s ``log=`` takes one writer, a path
(`JsonLines`), a plain function of the record (`Callback`), or a list of
them, so metrics can go to several places at once::

    vograd.train(..., log=["run/metrics.jsonl", vograd.metrics.TensorBoard("run/tb")])

    import wandb                                   # Weights & Biases: a callback
    wandb.init(project="vograd")
    vograd.train(..., log=["run/metrics.jsonl",
                           lambda r: wandb.log(vograd.metrics.flatten(r), step=r["step"])])

A record is the dict documented in `vograd.train` (``step``, ``loss``,
``variance``/``weight`` dicts per estimator component, ``window``, times, ...);
`flatten` turns it into ``{"loss": 1.2, "variance/rp": 0.3, ...}`` with only
the finite numbers, the shape TensorBoard and W&B take.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vograd import checkpoint as ckpt

Record = dict[str, Any]


@runtime_checkable
class MetricsWriter(Protocol):
    """The interface of a metrics sink: ``start`` (resume step), ``write``, ``close``."""

    def start(self, step: int) -> None: ...

    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


def flatten(record: Record, prefix: str = "") -> dict[str, float]:
    """Returns the finite numbers of ``record`` by ``/``-joined key (nested dicts descend;
    booleans become 0/1; None, strings and non-finite numbers are left out)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (bool, int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out


class JsonLines:
    """Appends one JSON line per record to ``path``.

    On ``start(step)`` the lines of steps at or after ``step`` (written by an
    interrupted run past its last checkpoint) and any line cut short by a kill
    are dropped, so a resumed run's file has each step once.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None

    def start(self, step: int) -> None:
        from vograd.checkpoint import remove_stale_temporaries

        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path.parent)
        truncate_json_lines(self.path, step)
        self._file = open(self.path, "a")

    def write(self, record: Record) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Callback:
    """Calls ``fn(record)`` for each record (W&B, MLflow, a list's ``append``, ...)."""

    def __init__(self, fn: Callable[[Record], Any]):
        self.fn = fn

    def start(self, step: int) -> None:
        pass

    def write(self, record: Record) -> None:
        self.fn(record)

    def close(self) -> None:
        pass


class TensorBoard:
    """Writes the `flatten`-ed numbers of each record as TensorBoard scalars under ``logdir``.

    Needs the ``tensorboard`` extra (``pip install "vograd[tensorboard]"``, i.e.
    tensorboardX: event files without TensorFlow). On a resume from step ``s``,
    events at steps ``>= s`` from the interrupted run are purged. View with
    ``tensorboard --logdir LOGDIR`` (the ``tensorboard`` package).
    """

    def __init__(self, logdir: str | os.PathLike):
        try:
            import tensorboardX  # noqa: F401
        except ImportError as err:
            raise ImportError(
                'TensorBoard metrics need tensorboardX: pip install "vograd[tensorboard]"'
            ) from err
        self.logdir = Path(logdir)
        self._writer = None

    def start(self, step: int) -> None:
        from tensorboardX import SummaryWriter

        # One event file per start: a resume in the same second must not reuse the name.
        self._writer = SummaryWriter(str(self.logdir), purge_step=step if step > 0 else None,
                                     filename_suffix=f".from{step}")

    def write(self, record: Record) -> None:
        step = int(record["step"])
        for tag, value in flatten(record).items():
            if tag != "step":
                self._writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


LogSpec = Any  # None, a path, a function, a MetricsWriter, or a sequence of them


def writers(log: LogSpec) -> list[MetricsWriter]:
    """Returns the writers ``log`` names: a path is `JsonLines`, a function `Callback`,
    a `MetricsWriter` itself; a list or tuple gives one writer per entry; None none."""
    if log is None:
        return []
    if isinstance(log, (list, tuple)):
        return [w for entry in log for w in writers(entry)]
    if isinstance(log, MetricsWriter):
        return [log]
    if isinstance(log, (str, os.PathLike)):
        return [JsonLines(log)]
    if callable(log):
        return [Callback(log)]
    raise TypeError(f"log must be a path, a callable, a MetricsWriter or a list of them, got "
                    f"{type(log).__name__}")


def truncate_json_lines(path: Path, start: int) -> None:
    """Keeps only the complete lines of ``path`` of steps before ``start`` (resume safety)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if isinstance(record, dict) and record.get("step", start) < start:
            kept.append(line)
    ckpt.atomic_write(path, "".join(s + "\n" for s in kept).encode())


__all__ = ["Callback", "JsonLines", "MetricsWriter", "TensorBoard", "flatten", "truncate_json_lines",
           "writers"]
