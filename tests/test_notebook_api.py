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

from support.paths import SOLUTIONS

NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.ipynb"))
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


def problems(names: set[str]) -> list[str]:
    """Return what is wrong with each dotted ``tlh.`` name: a private part, or a head not in ``__all__``."""
    found = []
    for dotted in sorted(names):
        head, *rest = dotted.split(".")
        if any(part.startswith("_") and not part.endswith("__") for part in (head, *rest)):
            found.append(f"tlh.{dotted}: a private name")
        elif head not in tlh.__all__ and not isinstance(getattr(tlh, head, None), types.ModuleType):
            found.append(f"tlh.{dotted}: {head!r} is not in tlhelpers.__all__")
    return found


def test_private_names_are_refused_and_dunders_allowed():
    """``tlh.evaluate.__wrapped__`` (the undecorated function, for ``forbid``) is public Python; ``_x`` is not."""
    assert problems({"surgery._x"}) == ["tlh.surgery._x: a private name"]
    assert problems({"_hidden"}) == ["tlh._hidden: a private name"]
    assert problems({"evaluate.__wrapped__", "shifts.FONTS", "freeze"}) == []
    assert problems({"not_a_helper"}) == ["tlh.not_a_helper: 'not_a_helper' is not in tlhelpers.__all__"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebooks_use_only_public_names(notebook):
    found = problems(used_names(notebook))
    assert not found, f"{notebook.parent.name}: " + "; ".join(found)
