"""Notebooks use the package through its public names only.

Every ``tlh.name`` in a solution notebook's code must be in ``tlhelpers.__all__`` (or be one
of its modules, for module-level constants such as ``tlh.shifts.FONTS``), and no notebook
reaches for a private name (``tlh.x._y``): what a lesson relies on is what the package
promises to keep.
"""
from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest

import tlhelpers as tlh

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
ATTRIBUTE = re.compile(r"\btlh((?:\.\w+)+)")


def used_names(notebook: Path) -> set[str]:
    """Return every dotted name after ``tlh.`` in the notebook's code cells."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return {match.group(1)[1:] for match in ATTRIBUTE.finditer(code)}


def test_the_scanner_reads_dotted_names(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                         "source": ["m = tlh.SmallCNN(seed=0)\n", "tlh.shifts.FONTS, tlh.surgery._x"]}]}))
    assert used_names(nb) == {"SmallCNN", "shifts.FONTS", "surgery._x"}


def test_private_names_are_refused_and_dunders_allowed():
    """``tlh.evaluate.__wrapped__`` (the undecorated function, for ``forbid``) is public Python; ``_x`` is not."""
    assert any(p.startswith("_") and not p.endswith("__") for p in "surgery._x".split("."))
    assert not any(p.startswith("_") and not p.endswith("__") for p in "evaluate.__wrapped__".split("."))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebooks_use_only_public_names(notebook):
    problems = []
    for dotted in sorted(used_names(notebook)):
        head, *rest = dotted.split(".")
        if any(part.startswith("_") and not part.endswith("__") for part in (head, *rest)):
            problems.append(f"tlh.{dotted}: a private name")
        elif head not in tlh.__all__ and not isinstance(getattr(tlh, head, None), types.ModuleType):
            problems.append(f"tlh.{dotted}: {head!r} is not in tlhelpers.__all__")
    assert not problems, f"{notebook.parent.name}: " + "; ".join(problems)
