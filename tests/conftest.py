"""Shared fixtures: a clean, offline, headless environment for every tlhelpers test.

Every test runs with the feature cache in its own temporary folder (never the user's
~/.cache/tlhelpers), with no TLH_DEVICE / TLH_NO_CACHE / NBGRADER_EXECUTION leaking in
from the shell, and with matplotlib's non-interactive Agg backend in the test process.
"""
from __future__ import annotations

# Agg for this process only: setting MPLBACKEND in os.environ would leak into the
# Jupyter kernels that nbval and the browser test start, and hide their figures.
import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import tlhelpers as tlh  # noqa: E402


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Isolate the environment variables tlhelpers reads, and point the cache at tmp_path."""
    for var in ("TLH_DEVICE", "TLH_NO_CACHE", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "tlh_cache"
    monkeypatch.setenv("TLH_CACHE_DIR", str(cache))
    yield cache
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def lite0():
    """The pretrained EfficientNet-Lite0 (loaded once; tests that change it must deep-copy it)."""
    return tlh.load_efficientnet_lite0()


@pytest.fixture(scope="session")
def mnist():
    """The stratified MNIST 5k split (train, test)."""
    return tlh.mnist5k()


@pytest.fixture
def tiny_digits(mnist):
    """A small 10-class MNIST subset: 5 train and 3 test images per class."""
    train, test = mnist
    return tlh.few_shot(train, 5, seed=0), tlh.few_shot(test, 3, seed=0)


def load_photo(name: str) -> torch.Tensor:
    """Return a real sample photo as a (1, 3, side, side) tensor in [0, 1], centre-cropped square.

    ``name``: ``"grace_hopper"`` (matplotlib) or ``"china"`` / ``"flower"`` (scikit-learn).
    """
    import numpy as np

    if name == "grace_hopper":
        from matplotlib import cbook

        import matplotlib.image

        image = matplotlib.image.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top:top + side, left:left + side]
