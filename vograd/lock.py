"""One writer per directory: an advisory ``fcntl.flock`` lock on ``DIR/.vograd.lock``.

    >>> with one_writer("runs/a/checkpoints"):
    ...     ...  # a second process (or a second call in this one) gets DirectoryLockedError

The lock file holds the holder's pid (and host name), so the error names the
other process. The lock is the kernel's: it is released when the holder
exits or is killed, even by SIGKILL, so a stale lock file never blocks a
resume. It is advisory: only vograd's writers take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".vograd.lock"


class DirectoryLockedError(RuntimeError):
    """Another process (or another call in this one) is writing to the directory."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"pid {text[0]} on {text[1]}"
    return "a process that has not written its pid yet"


@contextlib.contextmanager
def one_writer(directory: str | os.PathLike | None) -> Iterator[Path | None]:
    """Holds the lock of ``directory`` (created if missing) for the ``with`` block.

    ``None`` locks nothing. Raises `DirectoryLockedError` naming the holder's
    pid when another process, or another open of this process, holds it.
    """
    if directory is None:
        yield None
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryLockedError(
                f"{directory} is in use by another vograd process ({_holder(fd)}): one "
                "writer per directory; wait for it to finish or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
