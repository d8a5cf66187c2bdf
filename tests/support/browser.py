"""Helpers for tests/test_browser.py: a real Chromium, a real JupyterLab server, a copy of the course.

Nothing here runs at import time. The browser test drives the course the way people use it:
a student opens a released notebook in JupyterLab, runs the first cells, answers the first
exercise and presses nbgrader's Validate button; an instructor opens the formgrader.
Notebook utilities (nbgrader cells, answers without markers) are support.notebooks'.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .apt import ensure_binary
from .notebooks import assignment_ids, grade_id, is_answer, meta, read, strip_markers
from .paths import REPO


# Flags for Debian's Chromium on a machine whose network is closed (see the machine notes):
# without the background-networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# Not passed to the server and its kernels: the test session's MPLBACKEND=Agg (tests/conftest.py)
# would replace Jupyter's inline backend and hide every figure; NBGRADER_EXECUTION is nbgrader's
# own marker for a grading run, which a student's session is not.
ENV_NOT_PASSED = ("MPLBACKEND", "NBGRADER_EXECUTION")
APT_PACKAGES = ("chromium", "chromium-driver")


# ----------------------------------------------------------------------------- the browser
def find_chromium() -> str | None:
    """Path of a Chromium binary: $TLH_CHROMIUM, Debian's /usr/bin/chromium, then the PATH."""
    wanted = os.environ.get("TLH_CHROMIUM")
    candidates = ([wanted] if wanted else []) + list(CHROMIUM_CANDIDATES)
    for name in candidates:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def install_chromium(log_path: Path, *, lock_timeout: float = 600, step_timeout: float = 900) -> tuple[str | None, str]:
    """Find Chromium or install Debian's chromium + chromium-driver with apt-get (as root; see support.apt)."""
    return ensure_binary(find_chromium, APT_PACKAGES, log_path, lock_timeout=lock_timeout, step_timeout=step_timeout)


# ----------------------------------------------------------------------------- the course
def released_notebooks(course_dir: Path) -> list[Path]:
    """Released notebooks course/<assignment>/<name>.ipynb, sorted, checkpoints left out."""
    return sorted(p for p in course_dir.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def pick_released_notebook(course_dir: Path, prefer: str = "00-setup") -> Path | None:
    """The notebook a student opens first: the first in course/00-setup, else the first overall."""
    notebooks = released_notebooks(course_dir)
    preferred = [p for p in notebooks if p.parent.name == prefer]
    return (preferred or notebooks or [None])[0]


def assignments_with_sources(solutions_dir: Path) -> list[str]:
    """Assignment ids the formgrader should list: folders of solutions/ holding a notebook."""
    return [aid for aid in assignment_ids(solutions_dir) if any((solutions_dir / aid).glob("*.ipynb"))]


def _is_exercise(cell) -> bool:
    """An nbgrader answer cell (solution) or test cell (grade)."""
    return bool(meta(cell).get("solution") or meta(cell).get("grade"))


@dataclass
class StudentPlan:
    """What the simulated student does in a released notebook, cell indices from the top.

    Run the ``run_first`` cells before the first exercise; then, when the first exercise is a
    code answer whose solution is in solutions/, type that answer into cell ``answer_cell``
    and run ``run_after`` cells from there (the answer, its visible test, the demonstration
    that uses it), stopping before the next exercise. ``code_cells`` lists every code cell run;
    ``answered_tests`` the sources of the test cells the answer must now pass.
    """

    run_first: int
    code_cells: list[int]
    answer_cell: int | None = None
    answer: str = ""
    run_after: int = 0
    answered_tests: list[str] = field(default_factory=list)  # sources of the test cells that then run


def plan_student_run(released: Path, source: Path | None, max_code_cells: int = 8) -> StudentPlan:
    """Plan the student's work in ``released``, answering from ``source`` (its solutions/ twin).

    At most ``max_code_cells`` code cells before the first exercise and as many after it, so a
    long notebook keeps the test short.
    """
    cells = read(released).cells
    first = next((i for i, c in enumerate(cells) if _is_exercise(c)), len(cells))
    before = [i for i in range(first) if cells[i].cell_type == "code"]
    code = before[:max_code_cells]
    run_first = code[-1] + 1 if len(before) > max_code_cells else first
    plan = StudentPlan(run_first=run_first, code_cells=code)
    if run_first < first or first == len(cells) or source is None or not source.exists():
        return plan
    cell = cells[first]
    gid = grade_id(cell)
    if cell.cell_type != "code" or not is_answer(cell):
        return plan
    solutions = {grade_id(c): c.source for c in read(source).cells if is_answer(c)}
    if gid not in solutions:
        return plan
    end = next((i for i in range(first + 1, len(cells)) if is_answer(cells[i])), len(cells))
    after = [i for i in range(first, end) if cells[i].cell_type == "code"][:max_code_cells]
    plan.answer_cell = first
    plan.answer = strip_markers(solutions[gid])
    plan.run_after = after[-1] + 1 - first
    plan.answered_tests = [cells[i].source for i in after if meta(cells[i]).get("grade")]
    plan.code_cells += after
    return plan


def copy_course(dst: Path) -> Path:
    """Copy what JupyterLab and nbgrader need (config, course/, solutions/) into ``dst``.

    The test works on a copy because the Validate button saves the notebook (with outputs) and
    the formgrader writes gradebook.db: neither may touch the repository.
    """
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", dst / "nbgrader_config.py")
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "gradebook.db", "*.pyc")
    for name in ("course", "solutions"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dst / name, ignore=skip)
    return dst


# ----------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(settings_dir: Path) -> None:
    """User settings for the test's JupyterLab: no news or update toasts over the screenshots."""
    target = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"checkForUpdates": False, "fetchNews": "false"}))


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class LabServer:
    """``jupyter lab [args]`` started in ``workdir`` on 127.0.0.1 with a known token.

    ``args`` are what a person types after ``jupyter lab`` (``"course/"`` for the README's
    student command, nothing for an instructor in the repository root). The server runs in its
    own process group with private config, runtime, settings and workspace folders, so only
    what pip installed (nbgrader's extensions included) is active. ``start()`` returns at once
    (two servers can boot side by side), ``wait_ready()`` blocks until it answers, ``stop()``
    asks it to shut down (which stops its kernels), then kills its process group and any
    process it started that is still running. ``url(path)`` adds the token.
    """

    def __init__(self, workdir: Path, *args: str, log_path: Path):
        self.workdir, self.args, self.log_path = workdir, args, log_path
        self.port, self.token = free_port(), os.urandom(16).hex()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def url(self, path: str = "/lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        return _tail(self.log_path, n)

    def start(self) -> "LabServer":
        private = self.log_path.parent / f"jupyter-{self.port}"
        for sub in ("config", "runtime", "settings", "workspaces"):
            (private / sub).mkdir(parents=True, exist_ok=True)
        _lab_settings(private / "settings")
        env = {k: v for k, v in os.environ.items() if k not in ENV_NOT_PASSED}
        env.update(
            JUPYTER_CONFIG_DIR=str(private / "config"),  # no user-level config: only what pip installed
            JUPYTER_RUNTIME_DIR=str(private / "runtime"),
            TLH_CACHE_DIR=str(private / "tlh-cache"),  # never the user's ~/.cache/tlhelpers
            PYTHONUNBUFFERED="1",
        )
        cmd = [
            sys.executable, "-m", "jupyterlab", *self.args,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--LabApp.user_settings_dir={private / 'settings'}",
            f"--LabApp.workspaces_dir={private / 'workspaces'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # Jupyter refuses root without it (containers, CI machines)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90) -> "LabServer":
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.3)

    def warm_up(self, path: str, timeout: float = 120) -> None:
        """GET ``path`` in a background thread once the server answers (errors ignored)."""
        def get():
            with contextlib.suppress(Exception):
                self.wait_ready()
                urllib.request.urlopen(self.url(path), timeout=timeout).close()

        threading.Thread(target=get, name=f"warm-up {path}", daemon=True).start()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        started = _descendants(proc.pid)  # kernels run in sessions of their own, outside the group
        if proc.poll() is None:
            try:  # a clean shutdown stops the kernels too
                req = urllib.request.Request(self.url("/api/shutdown"), method="POST", data=b"")
                urllib.request.urlopen(req, timeout=5).close()
                proc.wait(timeout=10)
            except Exception:
                pass
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
        for pid, birth in started:  # whatever the shutdown left running, if it is still that process
            if _start_time(pid) == birth:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if self._log:
            self._log.close()


@contextlib.contextmanager
def jupyter_lab(workdir: Path, *args: str, log_path: Path, startup_timeout: float = 90):
    """``with jupyter_lab(...) as server``: start, wait until it answers, always stop."""
    server = LabServer(workdir, *args, log_path=log_path).start()
    try:
        yield server.wait_ready(startup_timeout)
    finally:
        server.stop()


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes started, directly or not, by ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            birth = _start_time(child)
            if birth is not None:
                found.append((child, birth))
    return found
