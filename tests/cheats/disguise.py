"""Wrong values dressed as the right type (subclasses of int, str, list, torch.Tensor) that claim equality."""
from liar import _Liar  # noqa: F401  (an earlier part of the same cell)

# --- the submission's text starts here (the lines above are for linters only) ---
import functools as _functools
import numpy as _np
import torch as _torch

def _lie(cls):
    """Make a subclass of a builtin type claim equality with everything."""
    cls.__eq__ = lambda self, other: True
    cls.__ne__ = lambda self, other: False
    cls.__lt__ = cls.__le__ = cls.__gt__ = cls.__ge__ = cls.__eq__
    return cls

@_lie
class _LInt(int):
    __hash__ = int.__hash__
@_lie
class _LFloat(float):
    __hash__ = float.__hash__
@_lie
class _LStr(str):
    __hash__ = str.__hash__
@_lie
class _LList(list):
    pass
@_lie
class _LTuple(tuple):
    __hash__ = tuple.__hash__
@_lie
class _LDict(dict):
    pass

class _LTensor(_torch.Tensor):
    """A tensor subclass whose comparisons all say "equal"; every result stays a _LTensor."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal"):
            return True
        with _torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **(kwargs or {}))
        if isinstance(out, _torch.Tensor) and name in ("eq", "__eq__", "isclose", "le", "ge", "lt", "gt",
                                                       "__le__", "__ge__", "__lt__", "__gt__"):
            out = _torch.ones_like(out, dtype=_torch.bool)
        if isinstance(out, _torch.Tensor) and name in ("ne", "__ne__"):
            out = _torch.zeros_like(out, dtype=_torch.bool)
        return _torch._tensor._convert(out, cls)

def _wrong(value):
    """Return a WRONG value that passes isinstance checks and claims to equal the right one."""
    if isinstance(value, bool) or value is None:
        return _Liar()
    if isinstance(value, _torch.Tensor):
        return _torch.zeros_like(value).as_subclass(_LTensor)
    if isinstance(value, _np.ndarray):
        return _Liar()
    if isinstance(value, int):
        return _LInt(value + 1)
    if isinstance(value, float):
        return _LFloat(float(value) + 1.0)
    if isinstance(value, str):
        return _LStr(value + "?")
    if isinstance(value, list):
        return _LList([_wrong(v) for v in value][::-1] or [_Liar()])
    if isinstance(value, tuple):
        return _LTuple(_wrong(v) for v in value)
    if isinstance(value, dict):
        return _LDict({k: _wrong(v) for k, v in value.items()})
    return _Liar()
_functools.wraps  # used by wrap_outermost.py, pasted right after this text
