"""SIGINT / SIGTERM during training: stop at the next safe point; a second signal exits at once.

Python runs signal handlers only between bytecodes of the main thread, so a
Ctrl-C during an XLA compile or a long device computation would wait for it.
`StopOnSignal` therefore also counts signals in a watcher thread, woken by
``signal.set_wakeup_fd`` as soon as one arrives: the first sets ``requested``
(the training loop checks it between outer steps, saves a checkpoint and
raises `TrainingInterrupted`), the second ends the process at once with
``os._exit(128 + signum)``; checkpoints are atomic, so nothing is lost but the
steps since the last one.

Active only in the main thread, and only for signals not ignored
(``SIG_IGN``, e.g. SIGINT of a background job) when it starts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal at a safe point (after a checkpoint, if any).

    ``signum``: the signal; ``step``: outer steps completed; ``exit_code``:
    ``128 + signum``, what a command-line tool should exit with.
    """

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step, self.exit_code = signum, step, 128 + signum


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed
        pass


class StopOnSignal:
    """Context manager; ``requested`` is the first signal's number, or None."""

    def __init__(self, signals: tuple[int, ...] = SIGNALS):
        self.signals = signals
        self.requested: int | None = None
        self._count = 0
        self._active = False
        self._noticed = threading.Event()

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is not threading.main_thread():
            return self
        handled = [s for s in self.signals if signal.getsignal(s) is not signal.SIG_IGN]
        if not handled:
            return self
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._old = {s: signal.signal(s, self._handler) for s in handled}
        self._thread = threading.Thread(target=self._watch, name="vograd-signals", daemon=True)
        self._thread.start()
        self._active = True
        return self

    def _handler(self, signum, frame) -> None:
        # Main thread, between bytecodes: marks the request at once (the watcher
        # thread may not have run yet); counting is the watcher's.
        if self.requested is None:
            self.requested = signum

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum == 0:  # __exit__'s sentinel
                    return
                if signum not in self.signals:
                    continue
                self._count += 1
                if self._count == 1:
                    self.requested = self.requested or signum
                    _say(f"vograd: {_name(signum)}: stopping after this outer step with a "
                         "checkpoint (send it again to exit at once)")
                    self._noticed.set()
                else:
                    _say(f"vograd: {_name(signum)} again: exiting at once "
                         "(the last checkpoint is kept)")
                    os._exit(128 + signum)

    def __exit__(self, *exc) -> None:
        if not self._active:
            return
        for s, old in self._old.items():  # None: a handler installed outside Python
            signal.signal(s, signal.SIG_DFL if old is None else old)
        signal.set_wakeup_fd(self._old_wakeup)
        os.write(self._write, b"\0")
        self._thread.join(timeout=5)
        os.close(self._read)
        os.close(self._write)
        self._active = False

    def stop(self, step: int, num_steps: int, checkpoint_dir) -> None:
        """Raises `TrainingInterrupted` for the requested signal, after one line on stderr."""
        if self._active:  # the watcher's notice first (it may not have run yet)
            self._noticed.wait(timeout=2)
        saved = (f"checkpoint in {checkpoint_dir}; run again to resume"
                 if checkpoint_dir is not None else "no checkpoint_dir, nothing saved")
        message = (f"vograd: {_name(self.requested)}: stopped after outer step {step} of "
                   f"{num_steps}; {saved}")
        _say(message)
        raise TrainingInterrupted(message, self.requested, step)
