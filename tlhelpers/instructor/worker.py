"""Grade ONE submission in a throwaway folder, inside a bubblewrap sandbox (what a worker runs).

``grade_one(job)`` runs in a local thread or on a Dask worker on another machine: the
``Job`` carries the submission and its assignment's source as bytes, so it needs no
shared file system, and the ``Result`` comes back as plain data. Nothing here touches
the real course folder or gradebook; ``tlhelpers.instructor.grade`` is the single writer.

Inside the throwaway folder::

    <tmp>/private/course/nbgrader_config.py     the course's grading policy (a copy)
    <tmp>/private/course/solutions/<id>/...      this assignment's source only
    <tmp>/private/course/submitted/<student>/<id>/...   this submission only
    <tmp>/private/course/gradebook.db            a private gradebook (this student only)
    <tmp>/private/job.json, result.json          what to grade, what came out
    <tmp>/home/                                  $HOME of the run (kernelspec, caches)
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tlhelpers.instructor import bwrap, watchdog
from tlhelpers.instructor.contract import Job, Kind, Result

MAX_RESULT_BYTES = 200_000_000      # files brought back from one submission, in all
PROCESSES = 512                     # processes and threads of one submission (when graded as root)
UID_BASE = 2_000_000_000            # sandbox users (as root): far above any real account's uid
KEPT_LOG = 20_000                   # characters of the sandbox's own output kept in the result


def _alembic_head() -> str:
    """Return the gradebook schema's current alembic revision, read in this process."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def empty_gradebook() -> bytes:
    """Return an empty nbgrader gradebook, made once per grading run and copied into each private course.

    nbgrader stamps every NEW gradebook with its schema version by running the ``alembic
    heads`` command, a second Python process that imports all of nbgrader (5-10 s). Each
    private course gets a copy of this one instead, and this one is stamped with the same
    revision read in this process.
    """
    from unittest import mock

    import nbgrader.api
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.object(nbgrader.api, "get_alembic_version", _alembic_head):
        path = Path(tmp) / "gradebook.db"
        with Gradebook(f"sqlite:///{path}"):
            pass
        return path.read_bytes()


@functools.cache
def font_cache() -> tuple[str, bytes] | None:
    """Return (file name, contents) of matplotlib's font list, or None without matplotlib.

    Each sandbox starts with an empty $HOME, where matplotlib would rebuild this list by
    reading every font file (about 0.4 s of each submission). The fonts are the
    read-only system and package ones, at the same paths inside; a stale entry only
    makes matplotlib rebuild the list.
    """
    try:
        from matplotlib import font_manager
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fontlist-v{font_manager.FontManager.__version__}.json"
        font_manager.json_dump(font_manager.fontManager, path)
        return path.name, path.read_bytes()


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        if not str(path.resolve()).startswith(str(root.resolve()) + os.sep):
            raise ValueError(f"refusing a path outside the folder: {rel!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read_tree(root: Path, limit: int = MAX_RESULT_BYTES) -> tuple[dict[str, bytes], list[str]]:
    files, dropped, total = {}, [], 0
    if not root.is_dir():
        return files, dropped
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        rel = str(path.relative_to(root))
        if total + size > limit:
            dropped.append(f"{rel} ({size:,} bytes)")
            continue
        files[rel] = path.read_bytes()
        total += size
    return files, dropped


_USERS: set[int] = set()
_USERS_LOCK = threading.Lock()


@contextlib.contextmanager
def sandbox_user():
    """Yield a uid of its own for each submission graded at once here, so per-user limits are per submission."""
    with _USERS_LOCK:
        slot = next(i for i in range(len(_USERS) + 1) if i not in _USERS)
        _USERS.add(slot)
    try:
        yield UID_BASE + (os.getpid() % 100_000) * 1000 + slot % 1000
    finally:
        with _USERS_LOCK:
            _USERS.discard(slot)


def _prepare(tmp: Path, job: Job, root: str) -> Path:
    """Write the private course, job.json, the kernelspec and the font list; return the private course."""
    private, course = tmp / "private", tmp / "private" / "course"
    _write_tree(course / "submitted" / job.student / job.assignment, job.files)
    _write_tree(course / "solutions" / job.assignment, job.source)
    (course / "nbgrader_config.py").write_bytes(job.config)
    if job.gradebook:
        (course / "gradebook.db").write_bytes(job.gradebook)
    spec = {"student": job.student, "assignment": job.assignment, "duedate": job.duedate,
            "cell_timeout": job.limits.cell_timeout}
    (private / "job.json").write_text(json.dumps(spec))
    kdir = tmp / "home" / ".local" / "share" / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True)
    notebook_dir = f"{root}/private/course/autograded/{job.student}/{job.assignment}"
    (kdir / "kernel.json").write_text(json.dumps(bwrap.kernel_spec(f"{root}/private", notebook_dir,
                                                                   sandboxed=job.sandboxed)))
    fonts = font_cache()
    if fonts:
        (tmp / "home" / ".config" / "matplotlib").mkdir(parents=True)
        (tmp / "home" / ".config" / "matplotlib" / fonts[0]).write_bytes(fonts[1])
    return course


def _environment(root: str, *, sandboxed: bool, threads: int) -> dict[str, str]:
    """Return the grading process's whole environment (nothing of the grader's own is passed on).

    PYTHONPATH is set on purpose: sandboxed, the package this process imported is bound
    read-only at INSIDE_LIB and found there first, so the sandbox grades with the very
    code the command runs (a checkout, or an install), never another copy.
    """
    n = str(threads or 1)
    home = f"{root}/home"
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
            "USER": "student", "LOGNAME": "student",  # the sandbox's uid has no passwd entry
            "PYTHONIOENCODING": "utf-8", "TLH_THREADS": n, "OMP_NUM_THREADS": n,
            "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            "TLH_CACHE_DIR": f"{home}/.cache/tlhelpers", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "JUPYTER_PATH": f"{home}/.local/share/jupyter",
            "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime",
            "JUPYTER_CONFIG_DIR": f"{home}/.jupyter", "IPYTHONDIR": f"{home}/.ipython",
            "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            "PYTHONPATH": bwrap.INSIDE_LIB if sandboxed else os.path.dirname(bwrap.package_dir())}


def _run(tmp: Path, job: Job, root: str, env: dict) -> watchdog.Watched:
    """Run the grading process (sandboxed, or not) under the job's limits and the watchdog."""
    as_root = job.sandboxed and os.geteuid() == 0
    limits = job.limits
    processes = int(limits.processes or (PROCESSES if as_root else 0))
    with sandbox_user() as uid:
        if as_root:  # the sandbox runs as a user of its own: it owns its throwaway folder
            for path in [tmp, *tmp.rglob("*")]:
                os.lchown(path, uid, uid)
        inner = [sys.executable, "-m", "tlhelpers.instructor.inside", f"{root}/private"]
        cmd = bwrap.bwrap_command(tmp, inner, uid=uid) if job.sandboxed else inner
        cmd = bwrap.limited(cmd, memory_mb=limits.memory_mb, disk_mb=limits.disk_mb, processes=processes)
        return watchdog.run_watched(cmd, folder=tmp, cwd=tmp / "private" / "course", env=env,
                                    timeout=float(limits.timeout_s or 1800), memory_mb=limits.memory_mb,
                                    disk_mb=limits.disk_mb)


def _outcome(job: Job, run: watchdog.Watched, course: Path) -> Result:
    """Turn how the grading process ended, and its result.json, into a Result."""
    log = run.output[-KEPT_LOG:]
    report = course.parent / "result.json"
    if run.broken == "wall-time limit":
        return Result.failure(job, Kind.OVER_LIMIT, f"wall-time limit: not finished after "
                                                    f"{job.limits.timeout_s:.0f} s (killed)", log=log)
    if run.broken:
        return Result.failure(job, Kind.OVER_LIMIT, f"{run.broken} (killed)", log=log)
    if run.returncode < 0:
        return Result.failure(job, Kind.CRASHED, "the grading process was killed by signal "
                                                 f"{signal.Signals(-run.returncode).name}", log=log)
    if not report.is_file():
        return Result.failure(job, Kind.FAILED, f"grading exited {run.returncode} without a result: "
                                                f"{run.output.strip()[-600:]}", log=log)
    data = json.loads(report.read_text("utf-8"))
    files, dropped = _read_tree(course / "autograded" / job.student / job.assignment)
    return Result(job.student, job.assignment, Kind.GRADED if data["ok"] else Kind.FAILED, data.get("reason", ""),
                  log=data.get("log", "") + log, timestamp=data.get("timestamp"),
                  notebooks=data.get("notebooks", {}), autograded=files, dropped=dropped)


def grade_one(job: Job) -> Result:
    """Grade one submission in a throwaway folder; return its scores and files, or why it was not graded.

    Never raises for a problem in the submission or the worker: the result says what kind
    of failure it was and why.
    """
    start = time.monotonic()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{job.student}-{job.assignment}")
    tmp = Path(tempfile.mkdtemp(prefix=f"tlh-grade-{safe}-"))
    try:
        os.chmod(tmp, 0o700)
        if job.sandboxed and shutil.which(bwrap.BWRAP) is None:
            result = Result.failure(job, Kind.NO_SANDBOX, f"no sandbox on {os.uname().nodename}: bubblewrap is "
                                    "not installed there (install it on every worker, or grade with --unsandboxed)")
        else:
            root = bwrap.INSIDE if job.sandboxed else str(tmp)
            course = _prepare(tmp, job, root)
            env = _environment(root, sandboxed=job.sandboxed, threads=job.limits.threads)
            result = _outcome(job, _run(tmp, job, root, env), course)
    except Exception as err:  # a broken worker: reported, never raised into the writer
        result = Result.failure(job, Kind.GRADER_ERROR, f"{type(err).__name__}: {err}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return result
