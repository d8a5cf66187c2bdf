"""The repository's folders, defined once for every test."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"
CONFIG = REPO / "nbgrader_config.py"
ARTIFACTS = REPO / "artifacts"
