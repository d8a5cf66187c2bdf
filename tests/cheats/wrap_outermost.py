"""Shared by the wrong-answer preludes: only the outermost call of an answer returns a wrong value."""
import functools as _functools


def _wrong(value):  # defined by the prelude before this text
    return value


# --- the submission's text starts here (the lines above are for linters only) ---
_DEPTH = [0]

def _disguised(fn):
    """Make fn's result wrong, at the outermost call only (answers that call answers stay honest inside)."""
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _DEPTH[0] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            _DEPTH[0] -= 1
        return out if _DEPTH[0] else _wrong(out)
    return wrapper
