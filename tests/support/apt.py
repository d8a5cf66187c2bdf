"""Install a Debian package a test needs (chromium, bubblewrap) with apt-get, once, when running as root.

Tests call ``ensure_binary`` from a session/module fixture and skip with the returned reason
when it cannot be had. A file lock keeps parallel test workers from racing, and apt waits
for dpkg's own lock instead of failing when another apt runs.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

LOCK_DIR = Path("/tmp")


def _run_logged(cmd: list[str], log, timeout: float) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode


def ensure_binary(find: Callable[[], str | None], packages: tuple[str, ...], log_path: Path, *,
                  lock_timeout: float = 600, step_timeout: float = 900) -> tuple[str | None, str]:
    """Return ``(path, "")`` when ``find()`` finds the binary, installing ``packages`` first if needed.

    Otherwise ``(None, reason)``: not root, no apt-get, apt failed (the log says why).
    """
    what = " + ".join(packages)
    path = find()
    if path:
        return path, ""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, f"{what} not installed and cannot apt-get install it (not root)"
    if shutil.which("apt-get") is None:
        return None, f"{what} not installed and apt-get is not available to install it"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = LOCK_DIR / f"tlhelpers-apt-{packages[0]}.lock"
    with open(lock_file, "w") as lock, open(log_path, "a") as log:
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return None, f"{what} not installed: gave up waiting {lock_timeout:.0f} s for {lock_file}"
                time.sleep(2)
        try:
            path = find()  # another worker may have installed it while we waited
            if path:
                return path, ""
            wait = ["-o", "DPkg::Lock::Timeout=300"]
            try:
                if _run_logged(["apt-get", *wait, "update"], log, step_timeout) != 0:
                    return None, f"{what} not installed: apt-get update failed (log: {log_path})"
                rc = _run_logged(["apt-get", *wait, "install", "-y", "--no-install-recommends", *packages],
                                 log, step_timeout)
            except subprocess.TimeoutExpired:
                return None, f"{what} not installed: apt-get took over {step_timeout:.0f} s (log: {log_path})"
            if rc != 0:
                return None, f"{what} not installed: apt-get install failed with {rc} (log: {log_path})"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    path = find()
    if path:
        return path, ""
    return None, f"apt-get installed {what} but the program was not found (log: {log_path})"


def which(name: str) -> Callable[[], str | None]:
    return lambda: shutil.which(name)


def sandbox_problem(log_path: Path) -> str:
    """Return "" when a bubblewrap sandbox can start (installing bwrap first when root), else why not."""
    from tlhelpers.instructor.bwrap import sandbox_problem as problem

    path, reason = ensure_binary(which("bwrap"), ("bubblewrap",), log_path)
    return reason if path is None else problem()
