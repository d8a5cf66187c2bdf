"""A class hub on this machine for tests/test_hub.py: its prerequisites, accounts and users' commands.

The hub needs root (it creates Unix accounts and starts servers as them), Node's
configurable-http-proxy (installed with npm when missing), and a Python environment every class
user can run: this machine's Python may live in root's home, which other users cannot enter, so
the tests build one outside it (``/opt/tlh-class-env``, a venv of the system's python3 holding this
repository and its instructor extra), once, and refresh the course package in it every session.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tlhelpers.instructor.hub import account_exists

from .paths import REPO

CLASS_ENV = Path(os.environ.get("TLH_CLASS_ENV", "/opt/tlh-class-env"))
MARKER = ".tlh-class-test"  # in the home of every account a test created, so only those are removed
PROXY_PACKAGE = "configurable-http-proxy@5"
LOGIN_LINE = re.compile(r"^\s+(?P<user>[a-z_][a-z0-9_-]*)\s+(?:student|instructor)\s+(?P<password>\S+)$")


@contextlib.contextmanager
def _lock(name: str):
    with open(f"/tmp/tlhelpers-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_logged(cmd: list[str], log_path: Path, timeout: float) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode


def ensure_proxy(log_path: Path) -> tuple[str | None, str]:
    """configurable-http-proxy's path, installing it with ``npm install -g`` as root if missing."""
    found = shutil.which("configurable-http-proxy")
    if found:
        return found, ""
    if os.geteuid() != 0 or shutil.which("npm") is None:
        return None, "configurable-http-proxy is missing and cannot be installed here (needs root and npm)"
    with _lock("npm-chp"):
        if not shutil.which("configurable-http-proxy"):
            rc = _run_logged(["npm", "install", "-g", "--no-fund", "--no-audit", PROXY_PACKAGE], log_path, 600)
            if rc != 0:
                return None, f"npm install -g {PROXY_PACKAGE} failed with {rc} (log: {log_path})"
    found = shutil.which("configurable-http-proxy")
    return (found, "") if found else (None, f"npm installed {PROXY_PACKAGE} but it is not on the PATH")


def ensure_class_env(log_path: Path) -> tuple[str | None, str]:
    """The class's Python (every user can run it), made once and given this repository's code now."""
    if os.geteuid() != 0:
        return None, "the class environment is made as root"
    base = shutil.which("python3", path="/usr/bin:/bin")
    if base is None:
        return None, "no system python3 (/usr/bin/python3) to make the class's environment from"
    python = CLASS_ENV / "bin" / "python"
    with _lock("class-env"):
        if not python.exists():
            if _run_logged([base, "-m", "venv", str(CLASS_ENV)], log_path, 300) != 0:
                return None, f"python3 -m venv {CLASS_ENV} failed (log: {log_path})"
        # Not editable: the users' servers must not read the repository, which may sit in root's home.
        rc = _run_logged([str(python), "-m", "pip", "install", "-q", f"{REPO}[instructor]"], log_path, 1200)
    if rc != 0:
        return None, f"installing the course into {CLASS_ENV} failed with {rc} (log: {log_path})"
    return str(python), ""


# ----------------------------------------------------------------------------- accounts
def foreign_accounts(users: list[str]) -> list[str]:
    """Accounts among ``users`` that exist and were not made by a test: never touch those."""
    return [u for u in users if account_exists(u) and not (Path(pwd.getpwnam(u).pw_dir) / MARKER).exists()]


def mark_as_test_accounts(users: list[str]) -> None:
    """Mark the existing accounts among ``users`` as made by a test, so remove_test_accounts may delete them."""
    for user in users:
        if account_exists(user):
            home = Path(pwd.getpwnam(user).pw_dir)
            home.mkdir(parents=True, exist_ok=True)
            (home / MARKER).touch()


def remove_test_accounts(users: list[str]) -> None:
    """Delete the accounts (and homes) a test made; leave any other account alone."""
    for user in users:
        if account_exists(user) and (Path(pwd.getpwnam(user).pw_dir) / MARKER).exists():
            subprocess.run(["pkill", "-KILL", "-u", user], check=False)
            subprocess.run(["userdel", "--remove", user], check=False, capture_output=True)


def as_user(user: str, *cmd: str, env: dict[str, str], cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the Unix user ``user``, in their home, with the class's environment."""
    home = pwd.getpwnam(user).pw_dir
    assignments = [f"{k}={v}" for k, v in {"HOME": home, "USER": user, **env}.items()]
    return subprocess.run(["runuser", "-u", user, "--", "env", *assignments, *cmd], cwd=cwd or home,
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- the hub
@dataclass
class RunningHub:
    """``python -m tlhelpers.instructor.hub`` running in the background, with what it printed."""

    proc: subprocess.Popen
    url: str
    state: Path
    passwords: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], *, port: int, state: Path, timeout: float = 180) -> "RunningHub":
        proc = subprocess.Popen([sys.executable, "-m", "tlhelpers.instructor.hub", *args], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)
        hub = cls(proc=proc, url=f"http://127.0.0.1:{port}", state=state)
        deadline = time.monotonic() + timeout
        for line in proc.stdout:  # the logins come after "is up", before "Exchange:"
            hub.output.append(line.rstrip())
            if (match := LOGIN_LINE.match(line.rstrip())) and "(" not in match["password"]:
                hub.passwords[match["user"]] = match["password"]
            if line.startswith("Exchange:") or time.monotonic() > deadline:
                break
        if not line.startswith("Exchange:"):
            hub.stop()
            raise RuntimeError("the hub did not come up:\n" + "\n".join(hub.output[-40:]))
        return hub

    @property
    def admin_token(self) -> str:
        return (self.state / "hub" / "admin-token").read_text().strip()

    def log_tail(self, n: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.state / "hub" / "jupyterhub.log").read_text().splitlines()[-n:])
        return "(no hub log)"

    def stop(self, timeout: float = 90) -> int:
        """Ctrl-C, as the instructor would; return the command's exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                rest, _ = self.proc.communicate(timeout=timeout)
                self.output += rest.splitlines()
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode
