"""Progress bars that show in terminals and in notebooks, and stay out of logs.

`progress_bar` is ``tqdm.auto.tqdm`` (an HTML widget in Jupyter when
ipywidgets is installed, text otherwise), turned off only when the output is
neither a terminal nor a notebook (a log file, a CI run, a pipe), where a bar
redrawn with carriage returns would only clutter the file.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm


def interactive(stream: IO | None = None) -> bool:
    """Returns True when ``stream`` (default stderr) is a terminal, or when running in a
    Jupyter kernel (notebook, JupyterLab, VS Code, Colab), whose streams are not TTYs."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return True
    # tqdm.autonotebook's own test for a notebook front end.
    return "ipykernel.zmqshell" in sys.modules


def progress_bar(*, enabled: bool = True, **kwargs: Any) -> tqdm:
    """Returns ``tqdm.auto.tqdm(**kwargs)``, disabled unless ``enabled`` and `interactive`."""
    return tqdm(disable=not (enabled and interactive()), **kwargs)
