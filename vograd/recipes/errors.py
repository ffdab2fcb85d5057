"""The one error type for bad input to the recipes and the ``vograd`` command.

A `UsageError` means the caller asked for something that cannot be done as
asked (an unknown name, a value out of range, an unusable directory); the
``vograd`` command reports it as one line ``vograd: error: ...`` and exits
with status 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input: the message says what was given and what is accepted."""


class UnknownNameError(UsageError, KeyError):
    """An unknown recipe, preset or ablation name (also a ``KeyError``, as it was before)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
