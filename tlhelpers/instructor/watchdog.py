"""Watch a running sandbox: the limits no single process can be given, checked every second.

The memory of all the submission's processes together, everything it writes (its folder
and its output), and the wall time. A submission over a limit is killed with everything
it started, and the reason is said in words.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POLL_S = 1.0                        # how often the watchdog looks at a running submission
MAX_FILES = 100_000                 # files and folders one submission may create
KEPT_OUTPUT = 100_000               # characters of the sandbox's own output kept


@dataclass
class Watched:
    """How a watched command ended: its exit status (None: killed here), its output, why it was killed."""

    returncode: int | None
    output: str
    broken: str = ""                # the limit it broke, in words ("" when it ended by itself)


def disk_usage(folder: Path) -> tuple[int, int]:
    """Return (bytes allocated, entries) under ``folder``; a folder the submission made unreadable is opened."""
    total, entries, stack = 0, 0, [str(folder)]
    while stack:
        path = stack.pop()
        try:
            listing = list(os.scandir(path))
        except PermissionError:
            try:
                os.chmod(path, 0o700)
                listing = list(os.scandir(path))
            except OSError:
                continue
        except OSError:
            continue
        for entry in listing:
            entries += 1
            try:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
            except OSError:
                continue
    return total, entries


def _process_tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _resident_bytes(processes: list) -> int:
    import psutil

    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox and everything in it (bwrap's own children die with it; unsandboxed, each one)."""
    import psutil

    for p in reversed(_process_tree(proc.pid)):
        try:
            p.kill()
        except psutil.Error:
            continue
    proc.kill()
    proc.wait()


def broken_limit(proc: subprocess.Popen, folder: Path, log, *, deadline: float, memory_mb: int,
                 disk_mb: int) -> str | None:
    """Return why the running submission must be stopped now, or None."""
    if time.monotonic() > deadline:
        return "wall-time limit"
    if memory_mb > 0:
        held = _resident_bytes(_process_tree(proc.pid))
        if held > memory_mb << 20:
            return (f"memory limit: its processes held {held >> 20:,} MB together (limit {memory_mb:,} MB, "
                    "--memory-mb)")
    if disk_mb > 0:
        used, entries = disk_usage(folder)
        used += os.fstat(log.fileno()).st_size
        if used > disk_mb << 20:
            return f"disk limit: it wrote {used >> 20:,} MB (limit {disk_mb:,} MB, --disk-mb)"
        if entries > MAX_FILES:
            return f"disk limit: it made more than {MAX_FILES:,} files"
    return None


def run_watched(cmd: list[str], *, folder: Path, cwd: Path, env: dict, timeout: float, memory_mb: int,
                disk_mb: int) -> Watched:
    """Run ``cmd`` in a session of its own, looking at it every POLL_S; kill it when it breaks a limit."""
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        rc, why = None, None
        try:
            while why is None:
                try:
                    rc = proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    why = broken_limit(proc, folder, log, deadline=deadline, memory_mb=memory_mb, disk_mb=disk_mb)
            if why:
                kill(proc)
        finally:
            if proc.poll() is None:  # this thread was interrupted: leave nothing running
                kill(proc)
        log.seek(max(0, os.fstat(log.fileno()).st_size - KEPT_OUTPUT))
        return Watched(None if why else rc, log.read().decode("utf-8", "replace"), why or "")
