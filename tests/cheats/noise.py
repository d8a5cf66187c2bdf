"""Harmless chatter on stderr each call: a UserWarning, a tqdm bar, a message."""
# --- the submission's text starts here (the lines above are for linters only) ---
import functools as _functools, sys as _sys, warnings as _warnings
from tqdm.auto import tqdm as _tqdm

def _noisy(fn):
    """Harmless chatter on stderr each call: a UserWarning, a tqdm bar, a message."""
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _warnings.warn(f"harmless warning from {fn.__name__} (a torch-style UserWarning)", UserWarning)
        for _ in _tqdm(range(3), desc="harmless progress bar"):
            pass
        print("harmless note on stderr", file=_sys.stderr)
        return fn(*args, **kwargs)
    return wrapper
