"""Which notebook builds which package helper, read from the helpers' docstrings."""
from __future__ import annotations

import inspect
import re

import tlhelpers as tlh

LESSON = re.compile(r"Lesson: (\d\d-[a-z0-9-]+) builds this \(exercise ``(\w+)``")


def lessons() -> dict[str, str]:
    """Return public helper -> the notebook that builds it ("Lesson: <id> builds this (exercise ``<name>``")."""
    out = {}
    for name in tlh.__all__:
        found = LESSON.search(inspect.getdoc(getattr(tlh, name)) or "")
        if found and found.group(2) == name:
            out[name] = found.group(1)
    return out


LESSONS = lessons()
