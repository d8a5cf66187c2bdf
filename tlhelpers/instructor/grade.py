"""Grade a class: every submission of one or all assignments, sandboxed, in parallel, resumable.

Run it from the course root (the repository root, where nbgrader_config.py is)::

    python -m tlhelpers.instructor.grade 03-feature-extraction      # one assignment, one job per core
    python -m tlhelpers.instructor.grade --all --jobs 8             # every assignment
    python -m tlhelpers.instructor.grade --all --scheduler tcp://10.0.0.5:8786   # a Dask cluster
    python -m tlhelpers.instructor.grade 03-feature-extraction --student ada --force

Each submission (``submitted/<student>/<assignment>/``) is graded by ``nbgrader autograde``
in its own throwaway folder inside a bubblewrap sandbox (``tlhelpers.instructor.sandbox``),
against a private copy of the assignment's source and a private gradebook. This process is
the only writer of the real course: it copies each result (scores, comments, late
penalty, timestamp, the autograded notebook) into ``gradebook.db`` and
``autograded/<student>/<assignment>/``, one submission at a time, so the Formgrader,
``nbgrader generate_feedback`` and ``nbgrader export`` work as after ``nbgrader autograde``.

A rerun grades only new or changed submissions (a content hash of the submission, the
assignment's source, nbgrader_config.py and the grading policy's code, kept in
``autograded/.tlh-grading.json``);
``--force`` regrades everything. Exit status: 0 when every submission was graded, 1 when
some could not be (each is named, with the reason, at the end and in nbgrader.log), 2 on
a usage error, 3 when no sandbox can start and ``--unsandboxed`` was not given.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tlhelpers.instructor import sandbox

STATE_FILE = ".tlh-grading.json"        # under autograded/ (ignored by git, not a student folder)
IGNORED = (".ipynb_checkpoints", "__pycache__")
log = logging.getLogger("tlhelpers.grade")


# --------------------------------------------------------------------------- the course
@dataclass
class Course:
    root: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def config(self) -> bytes:
        return (self.root / "nbgrader_config.py").read_bytes()

    def source_dir(self, assignment: str) -> Path:
        return self.root / "solutions" / assignment

    def assignments(self) -> list[str]:
        """Assignments with a source folder and at least one submission."""
        sub = self.root / "submitted"
        found = {p.name for p in sub.glob("*/*") if p.is_dir()} if sub.is_dir() else set()
        return sorted(a for a in found if self.source_dir(a).is_dir())

    def submissions(self, assignment: str, students: list[str] | None = None) -> list[tuple[str, Path]]:
        """(student, folder) for each submitted/<student>/<assignment>/ holding a notebook."""
        out = []
        for folder in sorted((self.root / "submitted").glob(f"*/{assignment}")):
            if folder.is_dir() and (students is None or folder.parent.name in students):
                if any(p.suffix == ".ipynb" for p in _files(folder)):
                    out.append((folder.parent.name, folder))
                else:
                    log.warning("No notebook in %s: skipped (scores zero in the export)", folder)
        return out


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not p.is_symlink() and not any(part in IGNORED for part in p.parts))


def read_tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder)}


def content_hash(*trees: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for tree in trees:
        for rel in sorted(tree):
            h.update(rel.encode() + b"\0" + hashlib.sha256(tree[rel]).digest())
        h.update(b"\1")
    return h.hexdigest()


class State:
    """student/assignment -> {hash, graded_at, host, seconds}; written atomically by the writer."""

    def __init__(self, course: Course):
        self.path = course.root / "autograded" / STATE_FILE
        try:
            self.data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def current(self, key: str, digest: str) -> bool:
        return self.data.get(key, {}).get("hash") == digest

    def record(self, key: str, **entry) -> None:
        self.data[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tlh-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- the single writer
def _duedate(course: Course, assignment: str) -> str | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            raise SystemExit(f"assignment {assignment!r} is not in gradebook.db: run "
                             f"`nbgrader generate_assignment {assignment} --force` first (docs/instructors.md)")
        return a.duedate.isoformat() if a.duedate else None


def write_result(course: Course, result: dict) -> None:
    """Copy one result into gradebook.db and autograded/ (called by this process only)."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    student, assignment = result["student"], result["assignment"]
    with warnings.catch_warnings(), Gradebook(course.db_url) as gb:
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy chatter
        try:
            gb.find_student(student)
        except MissingEntry:
            gb.add_student(student)
        stamp = parse_utc(result["timestamp"]) if result.get("timestamp") else None
        try:
            sub = gb.find_submission(assignment, student)
            if stamp is not None:
                sub.timestamp = stamp
        except MissingEntry:
            sub = gb.update_or_create_submission(assignment, student, **({"timestamp": stamp} if stamp else {}))
        try:
            for name, data in result.get("notebooks", {}).items():
                nb = gb.find_submission_notebook(name, assignment, student)
                nb.late_submission_penalty = data.get("late_submission_penalty")
                for grade in nb.grades:
                    got = data["grades"].get(grade.name)
                    if got is None:
                        continue
                    grade.auto_score = got["auto_score"]
                    grade.needs_manual_grade = bool(got["needs_manual_grade"] or grade.manual_score is not None)
                for comment in nb.comments:
                    got = data["comments"].get(comment.name)
                    if got is not None:
                        comment.auto_comment = got["auto_comment"]
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise
    dest = course.root / "autograded" / student / assignment
    if result.get("ok") and result.get("autograded") is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{assignment}.new-"))
        for rel, blob in result["autograded"].items():
            path = new / rel
            if Path(rel).name == STATE_FILE or not str(path.resolve()).startswith(str(new.resolve()) + os.sep):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        os.chmod(new, 0o755)
        old = dest.with_name(f".{assignment}.old-{os.getpid()}")
        if dest.exists():
            dest.rename(old)
        new.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    elif dest.exists():  # as nbgrader: a submission that failed leaves no autograded folder
        shutil.rmtree(dest)


def _append_log(course: Course, text: str) -> None:
    with open(course.root / "nbgrader.log", "a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- running the jobs
RETRYABLE = ("killed by signal", "KilledWorker", "worker was lost")  # the machine's fault, not the submission's


@dataclass
class Outcome:
    graded: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: int = 0


def _local_pool(jobs: int):
    pool = cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade")

    def wait(futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done
    return pool, (lambda job: pool.submit(sandbox.grade_one, job)), wait


def _dask_pool(address: str):
    from distributed import Client, wait as dask_wait

    client = Client(address, timeout="30s")

    def submit(job):
        return client.submit(sandbox.grade_one, job, pure=False,
                             key=f"grade-{job['assignment']}-{job['student']}-{time.monotonic_ns()}")

    def wait(futures):
        return dask_wait(list(futures), return_when="FIRST_COMPLETED").done
    return client, submit, wait


def grade(course: Course, assignments: list[str], *, students: list[str] | None = None, jobs: int = 0,
          scheduler: str | None = None, force: bool = False, sandboxed: bool = True, retries: int = 1,
          timeout_s: float = 3600, memory_mb: int = 8192, disk_mb: int = 2048, cell_timeout: int | None = None,
          progress: bool = True) -> Outcome:
    """Grade every new or changed submission of ``assignments``; this process writes every result."""
    from tqdm.auto import tqdm

    from tlhelpers.instructor import grading as policy

    config, state, outcome = course.config, State(course), Outcome()
    rules = {"nbgrader_config.py": config, "grading.py": Path(policy.__file__).read_bytes()}
    pending = []
    for assignment in assignments:
        source = read_tree(course.source_dir(assignment))
        duedate = _duedate(course, assignment)
        for student, folder in course.submissions(assignment, students):
            files = read_tree(folder)
            digest = content_hash(files, source, rules)
            key = f"{student}/{assignment}"
            if not force and state.current(key, digest) and (course.root / "autograded" / key).is_dir():
                outcome.skipped += 1
                continue
            pending.append({"student": student, "assignment": assignment, "files": files, "source": source,
                            "config": config, "duedate": duedate, "sandbox": sandboxed, "timeout_s": timeout_s,
                            "memory_mb": memory_mb, "disk_mb": disk_mb, "cell_timeout": cell_timeout,
                            "threads": 1, "hash": digest, "tries": 0})
    jobs = jobs or os.cpu_count() or 1
    where = f"Dask scheduler {scheduler}" if scheduler else f"{jobs} local job(s)"
    print(f"grading {len(pending)} submission(s) of {', '.join(assignments) or 'nothing'} on {where}"
          f"{'' if sandboxed else ' WITHOUT A SANDBOX'}; {outcome.skipped} unchanged since the last run "
          f"(--force regrades them)", file=sys.stderr)
    _append_log(course, f"[tlhelpers.grade | INFO | {_stamp()}] grading {len(pending)} submission(s) on {where}; "
                        f"sandbox {'on' if sandboxed else 'OFF (--unsandboxed)'}; {outcome.skipped} unchanged")
    if not pending:
        return outcome
    gradebook = sandbox.empty_gradebook()
    for job in pending:
        job["gradebook"] = gradebook
    pool, submit, wait = _dask_pool(scheduler) if scheduler else _local_pool(jobs)
    bar = tqdm(total=len(pending), unit="submission", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        active = {submit(job): job for job in pending}
        while active:
            for future in wait(active):
                job = active.pop(future)
                try:
                    result = future.result()
                except Exception as err:  # e.g. KilledWorker: a Dask task whose workers kept dying
                    result = {"student": job["student"], "assignment": job["assignment"], "ok": False,
                              "reason": f"{type(err).__name__}: {err} (the worker was lost)", "seconds": 0.0,
                              "host": "?", "log": ""}
                job["tries"] += 1
                reason = result.get("reason", "")
                if not result.get("notebooks") and job["tries"] <= retries and any(r in reason for r in RETRYABLE):
                    _append_log(course, f"[tlhelpers.grade | WARNING | {_stamp()}] {job['student']}/"
                                        f"{job['assignment']}: {reason}; retrying ({job['tries']}/{retries})")
                    bar.write(f"retrying {job['student']}/{job['assignment']}: {reason}")
                    active[submit(job)] = job
                    continue
                _record(course, state, job, result, outcome, bar)
    finally:
        bar.close()
        if scheduler:
            pool.close()
        else:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcome


def _record(course: Course, state: State, job: dict, result: dict, outcome: Outcome, bar) -> None:
    key = f"{job['student']}/{job['assignment']}"
    seconds, host = result.get("seconds", 0.0), result.get("host", "?")
    score = sum((g["auto_score"] or 0) for nb in result.get("notebooks", {}).values() for g in nb["grades"].values())
    header = (f"[tlhelpers.grade | INFO | {_stamp()}] {key}: graded in {seconds:.1f} s on {host}"
              f"{'' if result.get('ok') else ' -- FAILED: ' + result.get('reason', '')}")
    if result.get("notebooks"):  # nbgrader got as far as the gradebook (even a failed notebook scores)
        write_result(course, result)
    _append_log(course, header + "\n" + "\n".join(f"    {line}" for line in result.get("log", "").splitlines()))
    if result.get("ok"):
        outcome.graded.append(result)
        state.record(key, hash=job["hash"], graded_at=_stamp(), host=host, seconds=round(seconds, 1))
        if result.get("dropped"):
            bar.write(f"{key}: files too large to keep: {', '.join(result['dropped'][:5])}")
    else:
        outcome.failed.append(result)
        bar.write(f"NOT GRADED {key}: {result.get('reason', '')}")
    bar.update(1)
    bar.set_postfix(failed=len(outcome.failed), last=f"{key} {score:g} pts {seconds:.0f}s", refresh=False)


# --------------------------------------------------------------------------- the command
def _private_address(address: str) -> bool:
    """True for a TLS scheduler address, or one on this machine's loopback (no one else can reach it)."""
    import ipaddress

    from distributed.comm.addressing import get_address_host, parse_address

    if parse_address(address)[0] in ("tls", "inproc"):
        return True
    host = get_address_host(address)
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.instructor.grade", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment", nargs="?", help="assignment id (a folder of solutions/); or --all")
    parser.add_argument("--all", action="store_true", help="every assignment that has submissions")
    parser.add_argument("--student", action="append", help="only this student (repeatable)")
    parser.add_argument("--jobs", type=int, default=0, help="submissions graded at once here (default: one per core)")
    parser.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786): grade on its workers")
    parser.add_argument("--force", action="store_true", help="regrade submissions that did not change")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="grade WITHOUT a sandbox (student code runs as you, sees your files and network)")
    parser.add_argument("--timeout", type=float, default=3600, help="wall-time limit per submission, seconds")
    parser.add_argument("--memory-mb", type=int, default=8192,
                        help="memory of one submission, all its processes together (0: no limit)")
    parser.add_argument("--disk-mb", type=int, default=2048, help="all one submission may write (0: no limit)")
    parser.add_argument("--cell-timeout", type=int, help="override Execute.timeout (seconds per cell)")
    parser.add_argument("--retries", type=int, default=1, help="retries of a submission whose worker was killed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--course", default=".", help="the course root (default: the current folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    course = Course(Path(args.course).resolve())
    if not (course.root / "nbgrader_config.py").is_file():
        parser.error(f"no nbgrader_config.py in {course.root}: run this from the course root")
    if bool(args.assignment) == bool(args.all):
        parser.error("give one ASSIGNMENT or --all")
    assignments = course.assignments() if args.all else [args.assignment]
    if args.assignment and not course.source_dir(args.assignment).is_dir():
        parser.error(f"no solutions/{args.assignment}/ in {course.root}")
    sandboxed = not args.unsandboxed
    if sandboxed and not args.scheduler:
        problem = sandbox.sandbox_problem()
        if problem:
            print(f"error: cannot grade safely: {problem}.\nStudent code would run as you, with your files "
                  "(gradebook.db, solutions/, other submissions) and your network. Fix the sandbox, or pass "
                  "--unsandboxed to grade without one anyway.", file=sys.stderr)
            return 3
    if args.scheduler and not _private_address(args.scheduler):
        print(f"WARNING: {args.scheduler} is plain TCP: anyone who can reach it can read the submissions and "
              "hidden tests sent through it and run code on its workers. Use tls:// with certificates "
              "(docs/instructors.md, 'On several machines').", file=sys.stderr)
    if not sandboxed:
        print("WARNING: --unsandboxed: student code runs as you, with your files and network.", file=sys.stderr)
    outcome = grade(course, assignments, students=args.student, jobs=args.jobs, scheduler=args.scheduler,
                    force=args.force, sandboxed=sandboxed, retries=args.retries, timeout_s=args.timeout,
                    memory_mb=args.memory_mb, disk_mb=args.disk_mb, cell_timeout=args.cell_timeout,
                    progress=not args.no_progress)
    print(f"graded {len(outcome.graded)}, not graded {len(outcome.failed)}, unchanged {outcome.skipped}",
          file=sys.stderr)
    for f in outcome.failed:
        print(f"  NOT GRADED {f['student']}/{f['assignment']}: {f.get('reason', '')}", file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
