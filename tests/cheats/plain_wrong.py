"""Wrong values of exactly the right type, no subclass tricks."""
from liar import _Liar  # noqa: F401  (an earlier part of the same cell)

# --- the submission's text starts here (the lines above are for linters only) ---
import functools as _functools
import numpy as _np
import torch as _torch

def _wrong(value):
    """Return a WRONG value of exactly the right type (no subclass tricks)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, _torch.Tensor):
        return _torch.zeros_like(value)
    if isinstance(value, _np.ndarray):
        return _np.zeros_like(value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return float(value) + 1.0
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return [_wrong(v) for v in value][::-1] or ["?"]
    if isinstance(value, tuple):
        return tuple(_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: _wrong(v) for k, v in value.items()}
    return _Liar()
_functools.wraps  # used by wrap_outermost.py, pasted right after this text
