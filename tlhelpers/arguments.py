"""One set of argument checks for every helper, so the same mistake gets the same answer everywhere.

Whole numbers may be Python or NumPy integers (``np.int64`` from an array is a fine
count) but never ``bool`` (``True`` is an int to Python, and never what a caller meant).
Each check names the argument, the bad value and what would be valid.
"""
from __future__ import annotations

import math
import numbers


def whole(name: str, value, *, low: int = 0, none_ok: bool = False) -> int | None:
    """Return ``value`` as an int if it is a whole number >= ``low`` (or None when ``none_ok``).

    Raises:
        ValueError: naming ``name``, the value and the valid range.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        wanted = {0: "a non-negative int", 1: "a positive int"}.get(low, f"an int >= {low}")
        raise ValueError(f"{name} must be {'None or ' if none_ok else ''}{wanted}, got {value!r}")
    return int(value)


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           positive: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number in [low, high] (and > 0 when ``positive``).

    Raises:
        TypeError: if ``value`` is not a real number (a bool, a string, a tensor...).
        ValueError: if it is not finite or out of range, naming the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    value = float(value)
    out = (not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high)
           or (positive and value <= 0))
    if out:
        if positive and low is None and high is None:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        lo, hi = ("-inf" if low is None else low), ("inf" if high is None else high)
        raise ValueError(f"{name} must be a finite number in [{lo}, {hi}]{' and > 0' if positive else ''}, "
                         f"got {value!r}")
    return value
