"""Prose bound to its run: no measured number is typed into the markdown of a solution notebook.

A takeaway, a discussion or a model answer that quotes a measurement must print it or render
it from the run's variables (``IPython.display.Markdown(f"...")``), so that it can never
drift from what the run shows. Typed numbers are allowed only for constants that are not
measured (chance levels, hyperparameters, formula constants), listed below with the reason.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.paths import SOLUTIONS

NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.ipynb"))

# A decimal (0.5), a percentage (40 %, 92%) or a ratio (15x): the shapes a measurement takes.
MEASUREMENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?\s*%|\d+(?:\.\d+)?x\b|\d+\.\d+)")
# Inline code spans, inline and display maths, and link targets state code or formulas, not
# results. A fenced block is NOT exempt: a worked example's numbers go in code spans (one per
# line), so a typed result cannot hide in a block that looks like code.
NOT_PROSE = re.compile(r"(?<!`)`[^`\n]+`(?!`)|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)", re.S)

# assignment -> {typed constant: why it is not a measurement}
ALLOWED: dict[str, dict[str, str]] = {}   # empty: constants are written as `code` or $maths$


def typed_numbers(notebook: Path) -> list[tuple[int, str]]:
    """Return (cell index, number) for every measurement-shaped number in the markdown cells."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            prose = NOT_PROSE.sub(" ", "".join(cell["source"]))
            found += [(index, match.group(1)) for match in MEASUREMENT.finditer(prose)]
    return found


def test_the_scanner_finds_typed_measurements(tmp_path):
    """The scanner itself: typed results are found, code, maths and links are not."""
    nb = tmp_path / "x.ipynb"
    cell = {"cell_type": "markdown", "metadata": {}, "source": [
        "Transfer reached 94.5 % vs 83.1% for scratch, 15x further; `lr=0.01`, $p=0.5$, [a](v1.2.html).\n",
        "```python\nf([0.8])  # 0.25\n```"]}
    nb.write_text(json.dumps({"cells": [cell]}))
    assert [n for _, n in typed_numbers(nb)] == ["94.5 %", "83.1%", "15x", "0.8", "0.25"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_no_measured_number_is_typed_into_markdown(notebook):
    allowed = ALLOWED.get(notebook.parent.name, {})
    typed = [(i, n) for i, n in typed_numbers(notebook) if n not in allowed]
    assert not typed, (f"{notebook.parent.name}: numbers typed into markdown (cell, number): {typed}. "
                       "Print them from the run or render the sentence with IPython.display.Markdown(f'...'); "
                       "a constant that is not a measurement goes into ALLOWED with its reason.")
