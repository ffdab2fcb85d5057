"""The package's shape: one import name, and a core that does not import its applications."""

import subprocess
import sys


def test_core_does_not_import_tasks_or_recipes():
    # The core (vograd.*) is generic over unrolled systems: importing it must not pull in
    # the learned-optimizer tasks or the recipes (DESIGN.md's layering rule).
    code = (
        "import sys, vograd, vograd.estimators, vograd.train, vograd.checkpoint, vograd.metrics,"
        " vograd.plotting, vograd.progress;"
        "bad = sorted(m for m in sys.modules if m.startswith(('vograd.tasks', 'vograd.recipes',"
        " 'vograd.benchmarks', 'vograd.interop', 'torch', 'tensorboardX', 'matplotlib')));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_one_top_level_import_name():
    # pyproject's package discovery must find only vograd and its subpackages.
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["vograd*"]
    assert config["project"]["scripts"]["vograd"] == "vograd.recipes.cli:main"
