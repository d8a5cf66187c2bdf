"""Checks that test cells run to make sure a grade is earned by the student's own code.

Test cells (visible and hidden) call these inside the student's kernel, so they live in
the student package: a released notebook never imports ``tlhelpers.instructor``.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

REFUSAL = "write {lesson} yourself: calling the package's {helper} earns no points"


def _refusal(message: str):
    """Return the code of a function that takes any arguments and fails with ``message``."""
    namespace: dict = {}
    exec(f"def refuse(*args, **kwargs):\n    raise AssertionError({message!r})", namespace)
    return namespace["refuse"].__code__


@contextlib.contextmanager
def forbid(*helpers: Callable, lesson: str = "this exercise") -> Iterator[None]:
    """Make every call of ``helpers`` fail while the block runs, whatever name it is called by.

    A hidden test wraps the student's call in this, so an answer that only delegates to the
    package's own version (``tlh.freeze``, ``from tlhelpers.surgery import freeze as f``,
    ``getattr(tlh, "fr" + "eeze")``) fails instead of earning the points. The function
    objects themselves are changed (their code swapped for one that raises), so every alias
    is caught; the original code is put back when the block ends, even on an error.

    Args:
        helpers: plain Python functions of the package (no closures, not builtins).
        lesson: named in the failure message, e.g. ``"freeze"``.

    Example::

        with forbid(tlh.freeze, lesson="freeze"):
            out = freeze(model, until="conv3")
    """
    for helper in helpers:
        if not hasattr(helper, "__code__") or helper.__code__.co_freevars:
            raise TypeError(f"forbid takes plain functions without closures, got {helper!r}")
    originals = [helper.__code__ for helper in helpers]
    try:
        for helper in helpers:
            helper.__code__ = _refusal(REFUSAL.format(lesson=lesson,
                                                      helper=f"{helper.__module__}.{helper.__qualname__}"))
        yield
    finally:
        for helper, code in zip(helpers, originals):
            helper.__code__ = code
