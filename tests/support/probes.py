"""The tiny assignments the grading tests build for themselves (seconds to grade, not minutes).

``build_probe2``: no torch, two answers with tests (one hidden), a locked markdown question
followed by a manually graded written answer (tests/test_grade_command.py and the unit
tests). ``build_probe``: a tiny conv net and ``tlh.extract_features``, for the feature
cache and the grading environment (tests/test_grading.py).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from .notebooks import write

PROBE_HIDDEN_LINE = "assert square(-4) == 16, \"a negative number squared is positive\""


def source_cell(kind: str, gid: str, source: str, *, solution=False, grade=False, points=None):
    """Return a source-notebook cell with nbgrader metadata (a locked cell unless ``solution``)."""
    new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = new(source)
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": gid, "locked": not solution, "schema_version": 3,
                                 "solution": solution, "task": False}
    if grade:
        cell.metadata["nbgrader"]["points"] = points
    return cell


def _save(cells: list, path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    write(nb, path)


def build_probe2(folder: Path) -> Path:
    """Write probe2/probe2.ipynb: two answers with tests, and a written answer after a locked question."""
    cells = [
        source_cell("markdown", "intro", "# Probe 2\nBuilt by tests/support/probes.py."),
        # light on purpose: tests/test_grading.py grades the real notebooks (torch, tlhelpers) in the sandbox
        source_cell("code", "setup", "import time"),
        source_cell("code", "square", "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n"
                    "    ### END SOLUTION", solution=True),
        source_cell("code", "correct_square", "assert square(3) == 9, 'square(3) should be 9'\n"
                    "### BEGIN HIDDEN TESTS\nassert square(-4) == 16, 'negative numbers too'\n### END HIDDEN TESTS",
                    grade=True, points=1),
        source_cell("markdown", "question", "## A written question\nWhy is a square never negative?"),
        source_cell("markdown", "interpret", "### BEGIN SOLUTION\nA product of two numbers of the same sign.\n"
                    "### END SOLUTION", solution=True, grade=True, points=2),
        source_cell("markdown", "outro", "## One more"),
        source_cell("code", "cube", "def cube(x):\n    ### BEGIN SOLUTION\n    return x ** 3\n    ### END SOLUTION",
                    solution=True),
        source_cell("code", "correct_cube", "assert cube(2) == 8, 'cube(2) should be 8'", grade=True, points=1),
    ]
    _save(cells, folder / "probe2.ipynb")
    return folder


def build_probe(folder: Path) -> Path:
    """Write probe/probe.ipynb (small, fast: a tiny conv net on random images)."""
    cells = [
        source_cell("markdown", "intro", "# Probe\nA tiny assignment the grading tests build for themselves."),
        source_cell("code", "setup", "import os\nimport torch\nfrom torch import nn\nimport tlhelpers as tlh\n"
                    "torch.manual_seed(0)\n"
                    "model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU()).eval()\n"
                    "images = torch.rand(6, 1, 12, 12)\n"
                    "print('NBGRADER_EXECUTION =', os.environ.get('NBGRADER_EXECUTION'))"),
        source_cell("code", "pooled_features", "def pooled_features(model, images):\n"
                    "    \"\"\"Return the model's output, averaged over space: shape (n, channels).\"\"\"\n"
                    "    ### BEGIN SOLUTION\n    with torch.no_grad():\n        return model(images).mean(dim=(2, 3))\n"
                    "    ### END SOLUTION", solution=True),
        source_cell("code", "correct_pooled_features",
                    "\"\"\"Check pooled_features against tlh.extract_features of the last layer.\"\"\"\n"
                    "ours = pooled_features(model, images)\n"
                    "ref = tlh.extract_features(model, images, layer='3', progress=False)\n"
                    "assert type(ours) is torch.Tensor and tuple(ours.shape) == (6, 8), 'a (6, 8) tensor'\n"
                    "assert float((ours - ref).abs().max()) < 1e-5, 'features differ from tlh.extract_features'",
                    grade=True, points=2),
        source_cell("code", "square", "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n"
                    "    ### END SOLUTION", solution=True),
        source_cell("code", "correct_square", "\"\"\"Check square.\"\"\"\n"
                    "assert square(3) == 9, \"square(3) should be 9\"\n"
                    f"### BEGIN HIDDEN TESTS\n{PROBE_HIDDEN_LINE}\n### END HIDDEN TESTS", grade=True, points=1),
    ]
    _save(cells, folder / "probe.ipynb")
    return folder
