"""Plots: written after the numbers, skipped with one warning without matplotlib, drawn
with the object API (no global backend switch), one colour per optimizer, labelled axes."""

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from vograd import plotting, progress
from vograd.recipes import report, run

ROOT = Path(__file__).resolve().parents[1]


def _curves():
    rng = np.random.default_rng(0)
    good = 1.0 + rng.random((4, 2, 3)) * 0.1  # [T, S, E]
    bad = good + np.array([1.0, 1.0, -0.5, 1.0])[:, None, None]
    return np.array([10, 20, 30]), {"learned": (good, good), "adam": (bad, bad),
                                    "rmsprop": (bad + 0.1, bad + 0.1)}


@pytest.fixture
def no_matplotlib(monkeypatch):
    # A None entry in sys.modules makes `import matplotlib...` raise ImportError.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setattr(plotting, "_warned", False)


def test_report_without_matplotlib_writes_the_numbers_and_warns_once(tmp_path, no_matplotlib):
    steps, curves = _curves()
    seconds = {"learned": 1e-3, "adam": 5e-4, "rmsprop": 4e-4}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        md = report.write_report(str(tmp_path), steps, curves, seconds, "learned", "t")
        report.write_report(str(tmp_path / "again"), steps, curves, seconds, "learned", "t")
    assert "75%" in md  # adam loses 3 of 4 tasks to the reference, by construction
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == [10, 20, 30]
    assert (tmp_path / "report.md").read_text().startswith("# t")
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "differences.png").exists()
    mentions = [w for w in caught if "matplotlib is not installed" in str(w.message)]
    assert len(mentions) == 1  # four plots skipped, one warning


def test_training_plot_without_matplotlib_is_skipped(tmp_path, no_matplotlib):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "loss": 1.0, "window": 5,
                                                        "step_time": 0.1}) + "\n")
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        assert run.plot_training(tmp_path) is None
    assert not (tmp_path / "training.png").exists()


def _line_colors(ax):
    return {line.get_label(): line.get_color() for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_one_colour_per_optimizer_across_figures_and_labelled_axes(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    steps, curves = _curves()
    seconds = {"learned": 1e-3, "adam": 5e-4, "rmsprop": 4e-4}
    fig_c = report.plot_curves(str(tmp_path / "c.png"), steps, curves, seconds, "t")
    # The same optimizers in another order and without the reference's rival: colours stay.
    other = {"rmsprop": curves["rmsprop"], "learned": curves["learned"]}
    fig_o = report.plot_curves(str(tmp_path / "o.png"), steps, other, seconds, "t")
    fig_d = report.plot_differences(str(tmp_path / "d.png"), curves, "learned")
    for name in curves:
        assert to_hex(_line_colors(fig_c.axes[0])[name]) == plotting.color(name)
    assert to_hex(_line_colors(fig_o.axes[0])["rmsprop"]) == plotting.color("rmsprop")
    hist = {p.get_label(): to_hex(p.get_edgecolor()) for p in fig_d.axes[0].patches
            if not p.get_label().startswith("_")}
    assert hist == {"adam": plotting.color("adam"), "rmsprop": plotting.color("rmsprop")}
    assert len(set(plotting.color(n) for n in plotting.COLORS)) == len(plotting.COLORS)
    for fig in (fig_c, fig_d):
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
    assert os.path.getsize(tmp_path / "c.png") > 0 and os.path.getsize(tmp_path / "d.png") > 0


def test_training_plot_has_a_wall_clock_panel(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"step": i, "loss": 2.0 / (i + 1), "window": 10 + i, "step_time": 0.5} for i in range(8)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = run.plot_training(tmp_path)
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels[0] == "outer step" and labels[1].startswith("wall-clock seconds")
    # x of the wall-clock panel: summed step times, 0.5 s each.
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_xdata(), 0.5 * np.arange(1, 9))
    assert (tmp_path / "training.png").stat().st_size > 0


def test_no_global_backend_switch_or_pyplot_in_the_package():
    # matplotlib.use(...) or pyplot would change a notebook user's backend and keep
    # figures alive in pyplot's registry.
    hits = subprocess.run(["grep", "-rnE", r"matplotlib\.use\(|matplotlib\.pyplot|import pyplot|plt\.",
                           "vograd", "tests", "docs", "scripts"], cwd=ROOT, capture_output=True,
                          text=True).stdout
    hits = [h for h in hits.splitlines() if not h.startswith("tests/test_plots.py")]
    assert hits == []


def test_plotting_a_report_leaves_the_backend_alone(tmp_path):
    pytest.importorskip("matplotlib")
    code = (
        "import matplotlib, numpy as np\n"
        "matplotlib.use('svg')\n"
        "from vograd.recipes import report\n"
        "c = {'learned': (np.ones((2, 1, 3)), np.ones((2, 1, 3))),"
        " 'adam': (2 * np.ones((2, 1, 3)), 2 * np.ones((2, 1, 3)))}\n"
        f"report.write_report({str(tmp_path)!r}, np.arange(1, 4), c, {{}}, 'learned', 't')\n"
        "print(matplotlib.get_backend())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_is_on_in_terminals_and_notebooks_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell", raising=False)
    assert progress.interactive(_Stream(True))
    assert not progress.interactive(_Stream(False))  # a log file or a pipe
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", object())  # inside a Jupyter kernel
    assert progress.interactive(_Stream(False))
    monkeypatch.setattr(sys, "stderr", _Stream(False))
    assert not progress.progress_bar(total=3).disable
    assert progress.progress_bar(total=3, enabled=False).disable
