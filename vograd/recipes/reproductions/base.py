"""What a reproduction of a paper's finding is: its claim, its scale and the code that runs it.

A `Reproduction` pairs a finding of a paper (``claim``, quoted or closely
paraphrased, with the figure it comes from) with a function that re-runs it
at a scale this machine affords (``scale`` says what was scaled down and by
how much) and writes, into one output directory:

- ``results.json``: every number the verdict rests on (per seed, with
  confidence intervals where a mean is reported), plus ``"verdict"``;
- ``report.md``: the claim, the command, a table and the verdict;
- PNG plots beside them.

``run(out_dir, size, seeds, progress)`` must be resumable (finished parts
are kept in ``out_dir`` and skipped when it is called again) and return the
``results.json`` dict. ``size`` is ``"tiny"`` (seconds: what CI runs) or
``"full"`` (the reported scale, at most ~30 minutes on 2 cores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Size = Literal["tiny", "full"]
Verdict = Literal["reproduced", "partly", "not reproduced"]
VERDICTS: tuple[str, ...] = ("reproduced", "partly", "not reproduced")


@dataclass(frozen=True)
class Reproduction:
    """One paper finding and the code that reproduces it (see the module docstring)."""

    name: str
    paper: str
    figure: str
    claim: str
    scale: str
    run: Callable[[Path, Size, int, bool], dict]
    min_seeds: int = 3

    def report_header(self, command: str) -> list[str]:
        """Returns the first lines of a ``report.md``: title, claim, scale and ``command``."""
        return [f"# {self.name}: {self.paper}, {self.figure}", "", f"**Claim.** {self.claim}", "",
                f"**Scale.** {self.scale}", "", f"**Command.** `{command}`", ""]

    def __post_init__(self):
        if not self.name or not self.name.replace("-", "").isalnum():
            raise ValueError(f"a reproduction's name must be alphanumeric with dashes, got {self.name!r}")
        if not (self.claim and self.scale and self.paper and self.figure):
            raise ValueError(f"reproduction {self.name!r}: paper, figure, claim and scale are required")


__all__ = ["Reproduction", "Size", "VERDICTS", "Verdict"]
