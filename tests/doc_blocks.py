"""The python code blocks of README.md and docs/*.md, and running them as a reader would."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A block preceded by this comment is not run by the tests; the reason is required.
SKIP = re.compile(r"<!-- docs-test: skip \((?P<reason>[^)]+)\) -->\s*$")
# Optional packages a block may need: the block runs where they are installed (CI has all).
OPTIONAL = {"torch": "torch", "tensorboardX": "TensorBoard(", "matplotlib": "report.plot_"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    skip_reason: str | None


def blocks(page: Path) -> list[Block]:
    """Returns the ```python blocks of ``page`` in order, with their skip markers."""
    text = page.read_text()
    out = []
    for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        out.append(Block(page, text[:m.start()].count("\n") + 1, m.group(1),
                         skip.group("reason") if skip else None))
    return out


def run_page(page: Path, workdir: Path, monkeypatch) -> dict:
    """Runs the page's blocks in order in one namespace (as in a notebook), in ``workdir``
    (blocks write files such as ``runs/...``); returns the namespace."""
    monkeypatch.chdir(workdir)
    # A registered module, as a script would be: dataclasses (equinox modules) look their
    # module up in sys.modules.
    module = types.ModuleType(f"docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for block in blocks(page):
        if block.skip_reason is not None:
            continue
        for module, marker in OPTIONAL.items():
            if marker in block.code and importlib.util.find_spec(module) is None:
                pytest.skip(f"{page.name}:{block.line} needs {module}")
        exec(compile(block.code, f"{page}:{block.line}", "exec"), namespace)
    return namespace
