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


@pytest.fixture(scope="session")
def bwrap():
    """Nothing when a bubblewrap sandbox can start (bwrap apt-get installed when root), else a skip saying why."""
    from support.apt import sandbox_problem
    from support.paths import ARTIFACTS

    problem = sandbox_problem(ARTIFACTS / "apt-bubblewrap.log")
    if problem:
        pytest.skip(problem)
