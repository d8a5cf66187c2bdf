"""Grade ONE submission in a throwaway folder, inside a bubblewrap sandbox (used by ``grade``).

``grade_one(job)`` is what a worker runs (a local thread, or a Dask worker on another
machine): it receives the submission and its assignment's source as bytes, so it needs no
shared file system, and returns the results as plain data. Nothing here touches the real
course folder or gradebook; ``tlhelpers.instructor.grade`` is the single writer.

Inside the throwaway folder::

    <tmp>/private/course/nbgrader_config.py     the course's grading policy (a copy)
    <tmp>/private/course/solutions/<id>/...      this assignment's source only
    <tmp>/private/course/submitted/<student>/<id>/...   this submission only
    <tmp>/private/course/gradebook.db            a private gradebook (this student only)
    <tmp>/home/                                  $HOME of the run (kernelspec, caches)

The sandbox (``bwrap``): read-only /usr, /etc, /lib*, /bin, /sbin and the Python
environment; the tlhelpers package read-only; the throwaway folder read-write, and nothing
else (no course root, no gradebook, no other submission, no /root or /home, an empty
/tmp); new pid, network, ipc and uts namespaces (no network at all, a loopback for the
kernel's own sockets), an unprivileged user (a uid of its own for each submission when the
grader is root) and no capabilities. Limits: per process (setrlimit) address space, file
size and, as root, processes per submission; for the whole submission, watched every
second, the memory of all its processes together, all it writes (files, and /tmp and
/dev/shm are small tmpfs) and the wall time. The student's kernel runs in a
second, nested sandbox that also hides the private course (its gradebook, the hidden tests,
the results file) and shares only the notebook's own folder, and whose processes all die
with the kernel: code in a submission cannot rewrite its own grade either.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BWRAP = "bwrap"
SYSTEM_DIRS = ("/usr", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
INSIDE = "/grading"                 # the throwaway folder, seen from inside the sandbox
INSIDE_LIB = "/opt/tlh-lib"         # the tlhelpers package, read-only, on PYTHONPATH
MAX_RESULT_BYTES = 200_000_000      # files brought back from one submission, in all
TMPFS_MB = 512                      # each of the sandbox's /tmp and /dev/shm (memory-backed)
POLL_S = 1.0                        # how often the watchdog looks at a running submission
MAX_FILES = 100_000                 # files and folders one submission may create
PROCESSES = 512                     # processes and threads of one submission (when graded as root)
UID_BASE = 2_000_000_000            # sandbox users (as root): far above any real account's uid


# --------------------------------------------------------------------------- availability
def sandbox_problem() -> str | None:
    """None when a bubblewrap sandbox can start here, else the reason it cannot (in words)."""
    path = shutil.which(BWRAP)
    if path is None:
        return ("bubblewrap is not installed (`apt-get install bubblewrap`, Debian/Ubuntu package "
                "`bubblewrap`; or `dnf install bubblewrap`)")
    try:
        roots = [a for root in _python_roots() for a in ("--ro-bind", root, root)]
        proc = subprocess.run([path, *_system_binds(), *roots, "--unshare-all", "--cap-drop", "ALL", "--die-with-parent",
                               "--proc", "/proc", "--dev", "/dev", sys.executable, "-c", "print('ok')"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if proc.returncode != 0 or "ok" not in proc.stdout:
        return (f"bubblewrap is installed but cannot create a sandbox here (exit {proc.returncode}: "
                f"{proc.stderr.strip()[:300]}); user namespaces may be disabled "
                "(sysctl kernel.unprivileged_userns_clone=1, or a container's seccomp profile)")
    return None


def _python_roots() -> list[str]:
    """Folders of the Python environment (interpreter, standard library, site-packages)."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    import site

    for p in site.getsitepackages() + [os.path.dirname(os.__file__)]:
        real = os.path.realpath(p)
        if not any(real.startswith(r + os.sep) or real == r for r in roots):
            roots.add(real)
    return sorted(r for r in roots if not r.startswith(SYSTEM_DIRS))


def _system_binds() -> list[str]:
    args = []
    for d in SYSTEM_DIRS:
        if os.path.lexists(d):
            args += ["--ro-bind", d, d] if not os.path.islink(d) else ["--symlink", os.readlink(d), d]
    return args


def _package_dir() -> str:
    import tlhelpers

    return os.path.dirname(os.path.abspath(tlhelpers.__file__))


NOBODY = 65534                     # the uid/gid the sandbox runs as when the grader is root


def _dirs_for(paths: list[str]) -> list[str]:
    """``--perms 0755 --dir`` for every ancestor of ``paths`` (bwrap would make them 0700 as root)."""
    args, seen = [], set()
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            d = str(Path(*parts[:i]))
            if d not in seen and not d.startswith(SYSTEM_DIRS):
                seen.add(d)
                args += ["--perms", "0755", "--dir", d]
    return args


def bwrap_command(workdir: Path, inner: list[str], *, uid: int = NOBODY) -> list[str]:
    """The bwrap command line that runs ``inner`` with only ``workdir`` writable (at /grading).

    Run by root, bwrap mounts as root and the command inside drops to ``uid`` with setpriv
    (a user namespace would map the sandbox's user to root outside, the owner of
    /etc/shadow); run by anyone else, a user namespace maps it to that user. /tmp and
    /dev/shm are small tmpfs of their own (they live in memory).
    """
    lib = f"{INSIDE_LIB}/tlhelpers"
    if os.geteuid() == 0:
        who = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        inner = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 *inner]
    else:
        who = ["--unshare-all", "--cap-drop", "ALL", "--uid", "1000", "--gid", "1000"]
    return [BWRAP, *_system_binds(), *_dirs_for(_python_roots() + [lib]),
            *[a for root in _python_roots() for a in ("--ro-bind", root, root)],
            "--ro-bind", _package_dir(), lib,
            "--bind", str(workdir), INSIDE,
            "--proc", "/proc", "--dev", "/dev", *_small_tmpfs("/tmp"), *_small_tmpfs("/dev/shm"),
            *who, "--hostname", "grading", "--die-with-parent", "--new-session",
            "--chdir", "/", *inner]  # (root without capabilities may not enter a folder nobody owns)


def _small_tmpfs(path: str, mb: int = TMPFS_MB) -> list[str]:
    return ["--perms", "1777", "--size", str(mb << 20), "--tmpfs", path]


def kernel_spec(private: str, notebook_dir: str, *, sandboxed: bool) -> dict:
    """A ``python3`` kernelspec; sandboxed, the kernel runs in a nested bwrap that hides ``private``.

    The nested sandbox shares everything the outer one has (network namespace included:
    nbgrader talks to the kernel over loopback) except the private course, which is
    replaced by an empty tmpfs with only the notebook's folder bound back; it has its own
    pid namespace, so every process the student starts dies with the kernel. Interrupts
    go as messages (a signal would stop at bwrap).
    """
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if not sandboxed:
        return {"argv": kernel, "display_name": "Python 3", "language": "python"}
    argv = [BWRAP, "--dev-bind", "/", "/", "--size", str(1 << 20), "--tmpfs", private,
            "--bind", notebook_dir, notebook_dir,
            "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--unsetenv", "JPY_PARENT_PID",
            "--chdir", notebook_dir, *kernel]
    return {"argv": argv, "display_name": "Python 3", "language": "python", "interrupt_mode": "message"}


def _alembic_head() -> str:
    """The gradebook schema's current alembic revision, read in this process."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def empty_gradebook() -> bytes:
    """An empty nbgrader gradebook, made once per grading run and copied into each private course.

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
    """(file name, contents) of matplotlib's font list, or None without matplotlib.

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


# --------------------------------------------------------------------------- the worker side
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


def _limits(memory_mb: int, disk_mb: int, processes: int):
    def apply():
        os.setsid()
        try:  # the sandbox dies with the worker that started it (a killed Dask worker leaves nothing behind)
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
        if memory_mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        if disk_mb > 0:  # no single file bigger than all it may write
            resource.setrlimit(resource.RLIMIT_FSIZE, (disk_mb << 20, disk_mb << 20))
        if processes > 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


@contextlib.contextmanager
def _sandbox_user():
    """A uid of its own for each submission graded at once here, so per-user limits are per submission."""
    with _USERS_LOCK:
        slot = next(i for i in range(len(_USERS) + 1) if i not in _USERS)
        _USERS.add(slot)
    try:
        yield UID_BASE + (os.getpid() % 100_000) * 1000 + slot % 1000
    finally:
        with _USERS_LOCK:
            _USERS.discard(slot)


_USERS: set[int] = set()
_USERS_LOCK = threading.Lock()


def _disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes allocated, entries) under ``folder``; a folder the submission made unreadable is opened."""
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


def _kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox and everything in it (bwrap's own children die with it; unsandboxed, each one)."""
    import psutil

    tree = _process_tree(proc.pid)
    for p in reversed(tree):
        try:
            p.kill()
        except psutil.Error:
            continue
    proc.kill()
    proc.wait()


def _broken_limit(proc: subprocess.Popen, folder: Path, log, *, deadline: float, memory_mb: int,
                  disk_mb: int) -> str | None:
    """Why the running submission must be stopped now, or None."""
    if time.monotonic() > deadline:
        return "wall-time limit"
    if memory_mb > 0:
        held = _resident_bytes(_process_tree(proc.pid))
        if held > memory_mb << 20:
            return (f"memory limit: its processes held {held >> 20:,} MB together (limit {memory_mb:,} MB, "
                    "--memory-mb)")
    if disk_mb > 0:
        used, entries = _disk_usage(folder)
        used += os.fstat(log.fileno()).st_size
        if used > disk_mb << 20:
            return f"disk limit: it wrote {used >> 20:,} MB (limit {disk_mb:,} MB, --disk-mb)"
        if entries > MAX_FILES:
            return f"disk limit: it made more than {MAX_FILES:,} files"
    return None


def _run_watched(cmd: list[str], *, folder: Path, cwd: Path, env: dict, preexec, timeout: float, memory_mb: int,
                 disk_mb: int) -> tuple[int | None, str, str]:
    """Run the sandbox, looking at it every POLL_S; return (exit status or None, output, why it was stopped).

    The limits that no single process can be given: the submission's processes together
    (memory), and everything it writes (disk), as well as the wall time.
    """
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=preexec)
        why = ""
        try:
            while True:
                try:
                    rc = proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                why = _broken_limit(proc, folder, log, deadline=deadline, memory_mb=memory_mb, disk_mb=disk_mb)
                if why:
                    _kill(proc)
                    rc = None
                    break
        finally:
            if proc.poll() is None:  # this thread was interrupted: leave nothing running
                _kill(proc)
        log.seek(max(0, os.fstat(log.fileno()).st_size - 100_000))
        return rc, log.read().decode("utf-8", "replace"), why or ""


def grade_one(job: dict) -> dict:
    """Grade one submission in a throwaway folder; return scores, comments and files as data.

    ``job`` keys: student, assignment, files (submission: relative path -> bytes), source
    (the assignment's source folder, same form), config (nbgrader_config.py bytes),
    gradebook (optional: :func:`empty_gradebook`'s bytes),
    duedate (ISO text or None), sandbox (bool), timeout_s, memory_mb (all its processes
    together), disk_mb (all it writes, and its largest file), processes (optional), cell_timeout
    (or None), threads. Never raises for a problem in the submission: the result says
    ``ok: False`` and why.
    """
    start = time.monotonic()
    result = {"student": job["student"], "assignment": job["assignment"], "ok": False, "reason": "",
              "host": os.uname().nodename, "seconds": 0.0, "log": ""}
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{job['student']}-{job['assignment']}")
    tmp = Path(tempfile.mkdtemp(prefix=f"tlh-grade-{safe}-"))
    try:
        os.chmod(tmp, 0o700)
        private = tmp / "private"
        course = private / "course"
        sub = course / "submitted" / job["student"] / job["assignment"]
        _write_tree(sub, job["files"])
        _write_tree(course / "solutions" / job["assignment"], job["source"])
        (course / "nbgrader_config.py").write_bytes(job["config"])
        if job.get("gradebook"):
            (course / "gradebook.db").write_bytes(job["gradebook"])
        spec = {k: job.get(k) for k in ("student", "assignment", "duedate", "cell_timeout")}
        (private / "job.json").write_text(json.dumps(spec))
        sandboxed = bool(job.get("sandbox", True))
        if sandboxed and shutil.which(BWRAP) is None:
            result["reason"] = (f"no sandbox on {result['host']}: bubblewrap is not installed there "
                                "(install it on every worker, or grade with --unsandboxed)")
            return result
        root = INSIDE if sandboxed else str(tmp)
        home = tmp / "home"
        kdir = home / ".local" / "share" / "jupyter" / "kernels" / "python3"
        kdir.mkdir(parents=True)
        notebook_dir = f"{root}/private/course/autograded/{job['student']}/{job['assignment']}"
        (kdir / "kernel.json").write_text(json.dumps(kernel_spec(f"{root}/private", notebook_dir,
                                                                 sandboxed=sandboxed)))
        fonts = font_cache()
        if fonts:
            (home / ".config" / "matplotlib").mkdir(parents=True)
            (home / ".config" / "matplotlib" / fonts[0]).write_bytes(fonts[1])
        threads = str(job.get("threads") or 1)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": f"{root}/home", "LANG": "C.UTF-8",
               "USER": "student", "LOGNAME": "student",  # the sandbox's uid has no passwd entry
               "PYTHONIOENCODING": "utf-8", "TLH_THREADS": threads, "OMP_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "TLH_CACHE_DIR": f"{root}/home/.cache/tlhelpers", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "JUPYTER_PATH": f"{root}/home/.local/share/jupyter",
               "JUPYTER_RUNTIME_DIR": f"{root}/home/.local/share/jupyter/runtime",
               "JUPYTER_CONFIG_DIR": f"{root}/home/.jupyter", "IPYTHONDIR": f"{root}/home/.ipython",
               "MPLCONFIGDIR": f"{root}/home/.config/matplotlib",
               "PYTHONPATH": INSIDE_LIB if sandboxed else os.path.dirname(_package_dir())}
        as_root = sandboxed and os.geteuid() == 0
        with _sandbox_user() as uid:
            if as_root:  # the sandbox runs as a user of its own: it owns its throwaway folder
                for path in [tmp, *tmp.rglob("*")]:
                    os.lchown(path, uid, uid)
            inner = [sys.executable, "-m", "tlhelpers.instructor.sandbox", "inner", f"{root}/private"]
            cmd = bwrap_command(tmp, inner, uid=uid) if sandboxed else inner
            timeout = float(job.get("timeout_s") or 1800)
            memory_mb, disk_mb = int(job.get("memory_mb") or 0), int(job.get("disk_mb") or 0)
            processes = int(job.get("processes") or (PROCESSES if as_root else 0))
            rc, out, why = _run_watched(cmd, folder=tmp, cwd=course, env=env, timeout=timeout, memory_mb=memory_mb,
                                        disk_mb=disk_mb, preexec=_limits(memory_mb, disk_mb, processes))
        result["log"] = out[-20000:]
        report = private / "result.json"
        if why == "wall-time limit":
            result["reason"] = f"wall-time limit: not finished after {timeout:.0f} s (killed)"
        elif why:
            result["reason"] = f"{why} (killed)"
        elif rc < 0:
            result["reason"] = f"the grading process was killed by signal {signal.Signals(-rc).name}"
        elif not report.is_file():
            result["reason"] = f"grading exited {rc} without a result: {out.strip()[-600:]}"
        else:
            data = json.loads(report.read_text("utf-8"))
            result.update({k: v for k, v in data.items() if k != "log"})
            result["log"] = data.get("log", "") + result["log"]
            files, dropped = _read_tree(course / "autograded" / job["student"] / job["assignment"])
            result["autograded"] = files
            result["dropped"] = dropped
    except Exception as err:  # a broken worker: reported, never raised into the writer
        result["reason"] = f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        result["seconds"] = time.monotonic() - start
    return result


# --------------------------------------------------------------------------- inside the sandbox
def _export(course: Path, student: str, assignment: str) -> dict:
    """Scores, comments, penalties and the timestamp of one submission, from the private gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        sub = gb.find_submission(assignment, student)
        out = {"timestamp": sub.timestamp.isoformat() if sub.timestamp else None, "notebooks": {}}
        for nb in sub.notebooks:
            out["notebooks"][nb.name] = {
                "late_submission_penalty": nb.late_submission_penalty,
                "grades": {g.name: {"auto_score": g.auto_score, "needs_manual_grade": bool(g.needs_manual_grade)}
                           for g in nb.grades},
                "comments": {c.name: {"auto_comment": c.auto_comment} for c in nb.comments},
            }
        return out


def inner(private: Path) -> int:
    """Inside the sandbox: autograde the one submission against a private course; write result.json."""
    import warnings

    # jsonschema (under nbformat and nbgrader) imports rfc3987_syntax eagerly, which builds ~35
    # parsers: 2-3 s of CPU in every grading process (python-jsonschema/jsonschema#1428). No
    # notebook or gradebook schema uses the IRI formats it checks; blocking it is the documented
    # sys.modules way to make that optional import fail.
    sys.modules.setdefault("rfc3987_syntax", None)

    from nbgrader.api import Gradebook
    from nbgrader.apps.api import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy chatter
    spec = json.loads((private / "job.json").read_text())
    course = private / "course"
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    cfg.CourseDirectory.root = str(course)
    if spec.get("cell_timeout"):
        cfg.Execute.timeout = int(spec["cell_timeout"])
    api = NbGraderAPI(config=cfg)
    made = api.generate_assignment(spec["assignment"], force=True)
    if not made.get("success"):
        print(made.get("log", ""), made.get("error", ""), file=sys.stderr)
        return 3
    if spec.get("duedate"):
        from nbgrader.utils import parse_utc

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            gb.update_or_create_assignment(spec["assignment"], duedate=parse_utc(spec["duedate"]))
    done = api.autograde(spec["assignment"], spec["student"], force=True, create=True)
    result = {"ok": bool(done.get("success")), "reason": "" if done.get("success") else
              (done.get("error") or "nbgrader autograde failed").strip().splitlines()[-1][:500],
              "log": made.get("log", "") + done.get("log", "") + done.get("error", "")}
    try:
        result.update(_export(course, spec["student"], spec["assignment"]))
    except Exception as err:  # e.g. the submission never reached the gradebook
        result.setdefault("notebooks", {})
        result["export_error"] = f"{type(err).__name__}: {err}"
    (private / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "inner":
        sys.exit(inner(Path(sys.argv[2])))
    sys.exit("usage: python -m tlhelpers.instructor.sandbox inner PRIVATE_DIR (run by grade_one, not by hand)")
