"""Start a class on this machine: JupyterHub, real Unix accounts, nbgrader's exchange, the Formgrader.

    sudo python -m tlhelpers.instructor.hub --students alice,bob,carol

As root it creates an account for every student and instructor (and ``grader-<course>``, which
holds a copy of the course and runs the Formgrader as a hub service), prints each new password
once, makes the exchange folder, writes the class's nbgrader and JupyterHub settings under
``--state`` and runs JupyterHub on 127.0.0.1:8000 until Ctrl-C. Then it stops the hub, every
user's server and kernel, and whatever they started: no process is left behind.

The hub's settings are deploy/class_hub.py and the users' nbgrader settings deploy/nbgrader_config.py,
the same files The Littlest JupyterHub and Zero to JupyterHub load (docs/instructors.md).
Students' servers run ``--python`` (default: this interpreter), which every user must be able to
run: the command checks that first and says how to make such an environment when they cannot.
"""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent / "deploy"
NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")  # what useradd accepts everywhere, and a hub user name
EXECUTE_KEYS = ("timeout", "interrupt_on_timeout", "iopub_timeout", "raise_on_iopub_timeout")
IMPORTS = "import jupyterhub.singleuser, jupyterlab, nbgrader, tlhelpers"


class HubError(Exception):
    """What stops the command before the hub starts, said so the instructor knows what to do."""


@dataclass
class ClassHub:
    """One class on one machine: who is in it, where its files live, how the hub is reached."""

    course_id: str
    students: list[str]
    instructors: list[str]
    course_repo: Path
    state: Path = Path("/srv/tlh-class")
    exchange: Path = Path("/srv/nbgrader/exchange")
    python: str = sys.executable
    ip: str = "127.0.0.1"
    port: int = 8000
    service_port: int = 9999
    execute: dict = field(default_factory=dict)

    @property
    def grader(self) -> str:
        return f"grader-{self.course_id}"[:32]

    @property
    def grader_course_dir(self) -> Path:
        return Path(pwd.getpwnam(self.grader).pw_dir if account_exists(self.grader) else f"/home/{self.grader}") / self.course_id

    @property
    def url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """What every user's server, and a command run as a class user, needs to find the class."""
        # PATH: nbgrader runs `alembic` and the terminal runs `nbgrader` from the users' environment,
        # never from wherever root's Python lives.
        return {"TLH_CLASS_FILE": str(self.state / "class.json"),
                "JUPYTER_CONFIG_PATH": str(self.state / "jupyter"),
                "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin"}

    def class_settings(self) -> dict:
        """The class as deploy/class_hub.py and deploy/nbgrader_config.py read it (class.json)."""
        return {"course_id": self.course_id, "students": self.students, "instructors": self.instructors,
                "grader": self.grader, "grader_course_dir": str(self.grader_course_dir),
                "python": self.python, "formgrader": "service", "service_port": self.service_port,
                "exchange": str(self.exchange), "execute": self.execute, "environment": self.environment}


# ----------------------------------------------------------------------------- checks
def account_exists(user: str) -> bool:
    """Whether the Unix account ``user`` exists on this machine."""
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def parse_names(text: str, what: str) -> list[str]:
    """Split ``alice,bob`` into names, refusing any that is not a valid Unix and hub user name."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise HubError(f"--{what}: {', '.join(map(repr, bad))} not valid user names "
                       "(lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 31)")
    if len(set(names)) != len(names):
        raise HubError(f"--{what}: a name appears twice in {text!r}")
    return names


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only localhost is known to stay on this machine
        return host == "localhost"


def check_can_start(hub: ClassHub, *, allow_remote: bool) -> None:
    """Refuse, with what to do, anything that would make the hub fail or open it to the world."""
    if os.geteuid() != 0:
        raise HubError("run this as root (sudo python -m tlhelpers.instructor.hub ...): the hub creates "
                       "the class's Unix accounts and starts each user's server as that user")
    if shutil.which("configurable-http-proxy") is None:
        raise HubError("configurable-http-proxy is not on the PATH: install it with "
                       "`npm install -g configurable-http-proxy@5` (Node.js and npm from your distribution)")
    if set(hub.students) & set(hub.instructors):
        raise HubError(f"{sorted(set(hub.students) & set(hub.instructors))} are both students and instructors")
    if not (hub.students or hub.instructors):
        raise HubError("a class needs at least one student or instructor (--students alice,bob)")
    if not allow_remote and not _is_loopback(hub.ip):
        raise HubError(f"--ip {hub.ip} would serve the hub over plain HTTP to the network; put it behind "
                       "HTTPS (The Littlest JupyterHub, docs/instructors.md) or pass --allow-remote")
    check_python_for_users(hub.python)


def check_python_for_users(python: str) -> None:
    """Run ``python`` as an unprivileged user: every student's server will run it."""
    probe = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", IMPORTS],
                           capture_output=True, text=True, cwd="/", timeout=120)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise HubError(
            f"the class's users cannot run {python} with the course installed ({last}).\n"
            "Make an environment every user can run, outside root's home, and pass it with --python:\n"
            "  python3 -m venv /opt/tlh-class\n"
            "  /opt/tlh-class/bin/pip install '<this repository>[instructor]'\n"
            "  sudo python -m tlhelpers.instructor.hub --python /opt/tlh-class/bin/python --students ...")


def read_course(repo: Path) -> tuple[str, dict]:
    """The course id and the grader's Execute settings, from the course's own nbgrader_config.py."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (repo / "nbgrader_config.py").is_file() or not (repo / "solutions").is_dir():
        raise HubError(f"--course {repo} is not the course repository (no nbgrader_config.py and solutions/)")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(repo)).load_config()
    execute = {key: config.Execute[key] for key in EXECUTE_KEYS if key in config.Execute}
    return config.CourseDirectory.course_id, execute


# ----------------------------------------------------------------------------- setting up
def ensure_account(user: str, *, reset_password: bool) -> str | None:
    """Create the Unix account ``user`` (with a home) if missing; return a new password, or None."""
    if account_exists(user) and not reset_password:
        return None
    if not account_exists(user):
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    return password


STUDENT_LAB_OFF = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                   "@jupyter/nbgrader:course-list")  # instructor tools: a student has no course to manage


def prepare_home(user: str, *, student: bool) -> None:
    """Per-user Jupyter settings: no news prompts over the notebooks; for students, no grading tools."""
    account = pwd.getpwnam(user)
    jupyter = Path(account.pw_dir) / ".jupyter"
    files = {jupyter / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings":
             {"checkForUpdates": False, "fetchNews": "false"}}
    if student:
        files[jupyter / "labconfig" / "page_config.json"] = {"disabledExtensions": dict.fromkeys(STUDENT_LAB_OFF, True)}
        files[jupyter / "jupyter_server_config.json"] = {
            "ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False}}}
    for path, content in files.items():
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=1) + "\n")
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(jupyter)], check=True)


def prepare_folders(hub: ClassHub) -> None:
    """The exchange (everyone writes, nobody deletes another's files) and the class's state folders."""
    hub.exchange.mkdir(parents=True, exist_ok=True)
    hub.exchange.chmod(0o1777)
    (hub.state / "jupyter").mkdir(parents=True, exist_ok=True)
    hub.state.chmod(0o755)
    (hub.state / "hub").mkdir(exist_ok=True)
    (hub.state / "hub").chmod(0o700)  # the hub's database, cookie secret and tokens


def prepare_grader_course(hub: ClassHub) -> None:
    """Copy the course (config, solutions/, course/) into the grader account's home, once."""
    target = hub.grader_course_dir
    if not (target / "nbgrader_config.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(hub.course_repo / "nbgrader_config.py", target)
        skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
        for name in ("solutions", "course"):
            shutil.copytree(hub.course_repo / name, target / name, ignore=skip, dirs_exist_ok=True)
        subprocess.run(["chown", "-R", f"{hub.grader}:{hub.grader}", str(target)], check=True)


def write_settings(hub: ClassHub) -> Path:
    """Write class.json, the users' nbgrader config and the hub's config; return the hub's."""
    (hub.state / "class.json").write_text(json.dumps(hub.class_settings(), indent=2) + "\n")
    shutil.copy2(DEPLOY / "nbgrader_config.py", hub.state / "jupyter" / "nbgrader_config.py")
    token_file = hub.state / "hub" / "admin-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(32))
        token_file.chmod(0o600)
    config = hub.state / "hub" / "jupyterhub_config.py"
    config.write_text(_HUB_CONFIG.format(class_hub=DEPLOY / "class_hub.py", hub_dir=hub.state / "hub",
                                         ip=hub.ip, port=hub.port, api_port=hub.port + 1, python=hub.python))
    return config


_HUB_CONFIG = '''\
# Written by python -m tlhelpers.instructor.hub; rewritten at every start.
load_subconfig("{class_hub}")  # the class: groups, roles, the Formgrader service
c = get_config()
c.JupyterHub.ip = "{ip}"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {port} + 81                   # JupyterHub's own defaults (8081, 8001) for port 8000,
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"  # moved with --port so two classes can run
c.JupyterHub.db_url = "sqlite:///{hub_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub_dir}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{hub_dir}/proxy.pid"
c.JupyterHub.authenticator_class = "pam"             # the class's Unix accounts and passwords
c.Spawner.cmd = ["{python}", "-m", "jupyterhub.singleuser"]
# A token for scripts (the load benchmark, tests): read it from {hub_dir}/admin-token as root.
c.JupyterHub.services.append({{"name": "class-admin", "api_token": open("{hub_dir}/admin-token").read().strip()}})
c.JupyterHub.load_roles.append({{"name": "class-admin", "services": ["class-admin"],
                                 "scopes": ["admin:users", "admin:servers", "tokens", "read:groups"]}})
'''


# ----------------------------------------------------------------------------- running
def wait_until_up(hub: ClassHub, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Block until the hub answers its API (or fail with its exit code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HubError(f"jupyterhub exited with {proc.returncode}: see {hub.state / 'hub' / 'jupyterhub.log'}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=2) as reply:
                if reply.status == 200:
                    return
        time.sleep(0.3)
    raise HubError(f"the hub did not answer on {hub.url} within {timeout:.0f} s")


def _class_processes(uids: set[int], since: float) -> list:
    import psutil

    return [p for p in psutil.process_iter(["uids", "create_time"])
            if p.info["uids"] and p.info["uids"].real in uids and p.info["create_time"] >= since - 1]


def stop(proc: subprocess.Popen, uids: set[int], since: float) -> None:
    """Stop the users' servers, then the hub, then end whatever is left of the class.

    The servers get SIGTERM first: a Jupyter server then stops its kernels and exits, whereas the
    hub's own way (SIGINT, which a server without a terminal answers by asking for confirmation
    and resuming) costs seconds per server. What is left is every process the hub started (the
    proxy runs in a session of its own: it is found by parentage, taken before the hub exits) and
    every process of a class user started since the hub did (kernels, terminals, anything left).
    """
    import psutil

    started = []
    with contextlib.suppress(psutil.Error):
        started = psutil.Process(proc.pid).children(recursive=True)
    servers = _class_processes(uids, since)
    for p in servers:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    psutil.wait_procs(servers, timeout=10)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    if proc.poll() is None:
        proc.kill()
    left = [*started, *_class_processes(uids, since)]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=10)


def print_logins(hub: ClassHub, passwords: dict[str, str | None]) -> None:
    print(f"\nThe class hub is up: {hub.url}/hub/login  (Ctrl-C stops it)\n")
    width = max(map(len, passwords))
    for user, password in passwords.items():
        role = "instructor" if user in hub.instructors else "student"
        shown = password if password else "(existing account: password unchanged; --reset-passwords sets one)"
        print(f"  {user:<{width}}  {role:<10}  {shown}")
    print("\nPasswords are shown once, here. Instructors open the Formgrader at "
          f"{hub.url}/services/{hub.course_id}/formgrader\n"
          f"Exchange: {hub.exchange}; the course the Formgrader grades: {hub.grader_course_dir}", flush=True)


def run(hub: ClassHub, *, reset_passwords: bool = False, allow_remote: bool = False) -> int:
    """Set the class up, run the hub until Ctrl-C or SIGTERM, stop everything; return an exit code."""
    check_can_start(hub, allow_remote=allow_remote)
    passwords = {u: ensure_account(u, reset_password=reset_passwords) for u in hub.students + hub.instructors}
    ensure_account(hub.grader, reset_password=False)  # logs in only through the hub's service
    for user in [*hub.students, *hub.instructors, hub.grader]:
        prepare_home(user, student=user in hub.students)
    prepare_folders(hub)
    prepare_grader_course(hub)
    config = write_settings(hub)
    uids = {pwd.getpwnam(u).pw_uid for u in [*hub.students, *hub.instructors, hub.grader]}
    since = time.time()
    log = open(hub.state / "hub" / "jupyterhub.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=hub.state / "hub",
                            env={**os.environ, **hub.environment}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        wait_until_up(hub, proc)
        print_logins(hub, passwords)
        while not stopping and proc.poll() is None:
            time.sleep(0.5)
    finally:
        print("Stopping the hub, every server and kernel ...", flush=True)
        stop(proc, uids, since)
        log.close()
    return 0 if stopping else (proc.returncode or 1)


def _default_repo() -> Path:
    here = Path(__file__).resolve().parents[2]  # the repository an editable install points at
    return here if (here / "nbgrader_config.py").exists() else Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.instructor.hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default="", help="comma-separated user names, e.g. alice,bob,carol")
    parser.add_argument("--instructors", default="instructor", help="comma-separated (default: instructor)")
    parser.add_argument("--course", type=Path, default=None, help="the course repository (default: this one)")
    parser.add_argument("--python", default=sys.executable, help="the Python every user's server runs")
    parser.add_argument("--state", type=Path, default=ClassHub.state, help="the class's settings and hub state")
    parser.add_argument("--exchange", type=Path, default=ClassHub.exchange, help="nbgrader's exchange folder")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--service-port", type=int, default=9999, help="the Formgrader service's local port")
    parser.add_argument("--reset-passwords", action="store_true", help="new passwords for existing accounts too")
    parser.add_argument("--allow-remote", action="store_true", help="serve plain HTTP on a non-loopback --ip")
    args = parser.parse_args(argv)
    try:
        repo = (args.course or _default_repo()).resolve()
        course_id, execute = read_course(repo)
        hub = ClassHub(course_id=course_id, students=parse_names(args.students, "students"),
                       instructors=parse_names(args.instructors, "instructors"), course_repo=repo,
                       state=args.state.resolve(), exchange=args.exchange.resolve(), python=args.python,
                       ip=args.ip, port=args.port, service_port=args.service_port, execute=execute)
        return run(hub, reset_passwords=args.reset_passwords, allow_remote=args.allow_remote)
    except HubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
