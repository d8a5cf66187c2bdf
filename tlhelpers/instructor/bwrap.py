"""The sandbox's command lines: bubblewrap around the grading process, and around the student's kernel.

The grading sandbox: read-only /usr, /etc, /lib*, /bin, /sbin and the Python environment;
the tlhelpers package read-only; the throwaway folder read-write (at /grading), and nothing
else (no course root, no gradebook, no other submission, no /root or /home, a small empty
/tmp and /dev/shm of its own); new pid, network, ipc and uts namespaces (no network at all,
a loopback for the kernel's own sockets), an unprivileged user (a uid of its own for each
submission when the grader is root) and no capabilities. The student's kernel runs in a
second, nested sandbox that also hides the private course (its gradebook, the hidden
tests, the results file) and whose processes all die with the kernel.

Per-process limits are set by wrappers (``setpriv``, ``prlimit``) rather than a
``preexec_fn``: the command starts sandboxes from threads, where Python warns that
``preexec_fn`` can deadlock.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BWRAP = "bwrap"
SYSTEM_DIRS = ("/usr", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
INSIDE = "/grading"                 # the throwaway folder, seen from inside the sandbox
INSIDE_LIB = "/opt/tlh-lib"         # the tlhelpers package, read-only, on PYTHONPATH
TMPFS = ("/tmp", "/dev/shm")        # the sandbox's own, small and memory-backed
TMPFS_MB = 512                      # each of them
NOBODY = 65534                      # the uid/gid the sandbox runs as when the grader is root
WRAPPERS = ("setpriv", "prlimit")   # util-linux: the parent-death signal and the rlimits


def sandbox_problem() -> str | None:
    """Return None when a bubblewrap sandbox can grade here, else the reason it cannot (in words)."""
    path = shutil.which(BWRAP)
    if path is None:
        return ("bubblewrap is not installed (`apt-get install bubblewrap`, Debian/Ubuntu package "
                "`bubblewrap`; or `dnf install bubblewrap`)")
    missing = [tool for tool in WRAPPERS if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} (util-linux) not found: the sandbox's limits need them"
    with tempfile.TemporaryDirectory(prefix="tlh-probe-") as tmp:
        probe = [sys.executable, "-c", "import nbgrader; print('ok')"]
        try:  # the very command line grading uses: a Python environment it hides is found here
            proc = subprocess.run(bwrap_command(Path(tmp), probe), capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not start: {err}"
    if proc.returncode != 0 or "ok" not in proc.stdout:
        who = ("it runs as an unprivileged user, so the Python environment must be readable by every user; "
               if os.geteuid() == 0 else "")
        return (f"bubblewrap is installed but cannot run this Python ({sys.executable}) in a sandbox here "
                f"(exit {proc.returncode}: {proc.stderr.strip()[-300:]}); {who}user namespaces may be disabled "
                "(sysctl kernel.unprivileged_userns_clone=1, or a container's seccomp profile)")
    return None


def python_roots() -> list[str]:
    """Return the folders of the Python environment (interpreter, standard library, site-packages)."""
    import site

    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
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


def package_dir() -> str:
    """Return the folder of the tlhelpers package this process imported (bound into the sandbox)."""
    import tlhelpers

    return os.path.dirname(os.path.abspath(tlhelpers.__file__))


def _dirs_for(paths: list[str]) -> list[str]:
    """Return ``--perms 0755 --dir`` for every ancestor of ``paths`` (bwrap would make them 0700 as root)."""
    args, seen = [], set(TMPFS)  # the tmpfs are mounted already, world-writable: leave them be
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            d = str(Path(*parts[:i]))
            if d not in seen and not d.startswith(SYSTEM_DIRS):
                seen.add(d)
                args += ["--perms", "0755", "--dir", d]
    return args


def _small_tmpfs(path: str, mb: int = TMPFS_MB) -> list[str]:
    return ["--perms", "1777", "--size", str(mb << 20), "--tmpfs", path]


def bwrap_command(workdir: Path, inner: list[str], *, uid: int = NOBODY) -> list[str]:
    """Return the bwrap command line that runs ``inner`` with only ``workdir`` writable (at /grading).

    Run by root, bwrap mounts as root and the command inside drops to ``uid`` with setpriv
    (a user namespace would map the sandbox's user to root outside, the owner of
    /etc/shadow); run by anyone else, a user namespace maps it to that user. /tmp and
    /dev/shm are mounted before the Python environment is bound, so an environment that
    lives under /tmp (a virtualenv made there) is bound on top of the empty tmpfs, not
    hidden by it.
    """
    lib = f"{INSIDE_LIB}/tlhelpers"
    if os.geteuid() == 0:
        who = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        inner = [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 *inner]
    else:
        who = ["--unshare-all", "--cap-drop", "ALL", "--uid", "1000", "--gid", "1000"]
    roots = python_roots()
    return [BWRAP, *_system_binds(), "--proc", "/proc", "--dev", "/dev",
            *[a for path in TMPFS for a in _small_tmpfs(path)],
            *_dirs_for(roots + [lib]), *[a for root in roots for a in ("--ro-bind", root, root)],
            "--ro-bind", package_dir(), lib,
            "--bind", str(workdir), INSIDE,
            *who, "--hostname", "grading", "--die-with-parent", "--new-session",
            "--chdir", "/", *inner]  # (root without capabilities may not enter a folder nobody owns)


def limited(cmd: list[str], *, memory_mb: int, disk_mb: int, processes: int) -> list[str]:
    """Return ``cmd`` wrapped so it dies with the thread that starts it and runs under per-process limits.

    ``setpriv --pdeathsig KILL``: a killed worker leaves no sandbox behind. ``prlimit``:
    address space, largest file (no file bigger than all it may write), processes (as
    root: per sandbox user) and no core files.
    """
    limits = ["--core=0"]
    if memory_mb > 0:
        limits.append(f"--as={memory_mb << 20}")
    if disk_mb > 0:
        limits.append(f"--fsize={disk_mb << 20}")
    if processes > 0:
        limits.append(f"--nproc={processes}")
    return [shutil.which("setpriv") or "setpriv", "--pdeathsig", "KILL", "--",
            shutil.which("prlimit") or "prlimit", *limits, "--", *cmd]


def kernel_spec(private: str, notebook_dir: str, *, sandboxed: bool) -> dict:
    """Return a ``python3`` kernelspec; sandboxed, the kernel runs in a nested bwrap that hides ``private``.

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
