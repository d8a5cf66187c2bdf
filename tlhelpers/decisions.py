"""The course's one rule for naming a winner: a lead beyond the spread over seeds and the test set's noise."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .arguments import whole

MIN_SEEDS = 3
_VERBS = {"win": "beats", "lose": "loses to", "inconclusive": "is within noise of"}


class Decision(NamedTuple):
    """What :func:`decide` found: ``verdict`` ("win", "lose" or "inconclusive"), ``lead`` and ``margin``."""

    verdict: str
    lead: float
    margin: float

    @property
    def verb(self) -> str:
        """Return the verdict as the verb of "a ... b": "beats", "loses to" or "is within noise of"."""
        return _VERBS[self.verdict]


def _paired(name: str, values) -> np.ndarray:
    """Return ``values`` as a 1-D float array of finite numbers, one per seed."""
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)
    if array.ndim != 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a flat list of finite numbers, one per seed, got {values!r}")
    return array


def decide(a, b, *, n_test: int | None = None, higher_is_better: bool = True) -> Decision:
    """Decide whether a beats b over paired seeds: "win", "lose" or "inconclusive", with the lead and margin.

    Lesson: 02-pretrained-models builds this (exercise ``decide``, without ``higher_is_better``).

    ``a[i]`` and ``b[i]`` are one seed's results for the two arms (the same labelled draw,
    the same initialisation seed), so the seed's own luck cancels in the difference
    ``d[i] = a[i] - b[i]``. The rule:

    - lead = mean(d); spread = the sample standard deviation of d (ddof = 1);
    - with ``n_test`` (both arms scored on the same n_test examples), the test set itself
      is a sample too, which no seed re-draws: its noise is one binomial standard error,
      ``sqrt(p * (1 - p) / n_test)`` at the arms' mean accuracy p;
    - margin = the larger of the two;
    - "win" when lead > margin and every seed has d > 0; "lose" when lead < -margin and
      every seed has d < 0; otherwise "inconclusive" (within noise).

    Args:
        a, b: one result per seed for each arm, paired by position (at least 3 seeds).
            Accuracies are fractions in [0, 1] when ``n_test`` is given.
        n_test: size of the one test set both arms were scored on; None when each seed
            has its own test set (the seeds already re-draw it) or the values are not
            accuracies.
        higher_is_better: False for losses and errors, where the smaller value wins.

    Returns:
        ``Decision(verdict, lead, margin)``: a tuple, in the units of a and b; ``lead`` is
        positive when a is better.

    Raises:
        ValueError: for lists of different lengths, fewer than 3 seeds, values that are
            not finite, or accuracies outside [0, 1] (percentages: divide by 100) with ``n_test``.
        TypeError: for a ``higher_is_better`` that is not a bool.
    """
    a, b = _paired("a", a), _paired("b", b)
    if len(a) != len(b):
        raise ValueError(f"a and b must be paired, one result per seed each, got {len(a)} and {len(b)} results")
    if len(a) < MIN_SEEDS:
        raise ValueError(f"the rule needs at least {MIN_SEEDS} seeds (a spread from fewer says nothing), "
                         f"got {len(a)}")
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better must be True or False, got {higher_is_better!r}")
    d = (a - b) if higher_is_better else (b - a)
    lead, margin = float(d.mean()), float(d.std(ddof=1))
    if n_test is not None:
        n_test = whole("n_test", n_test, low=1)
        if np.any(np.r_[a, b] < 0) or np.any(np.r_[a, b] > 1):
            raise ValueError(f"with n_test, a and b must be accuracies in [0, 1] (divide percentages by 100), "
                             f"got {a.tolist()} and {b.tolist()}")
        p = float(np.r_[a, b].mean())
        margin = max(margin, math.sqrt(p * (1 - p) / n_test))
    if lead > margin and np.all(d > 0):
        return Decision("win", lead, margin)
    if lead < -margin and np.all(d < 0):
        return Decision("lose", lead, margin)
    return Decision("inconclusive", lead, margin)
