"""Grade a class: every submission of one or all assignments, sandboxed, in parallel, resumable.

Run it from the course root (the repository root, where nbgrader_config.py is)::

    python -m tlhelpers.instructor.grade 03-feature-extraction      # one assignment, one job per core
    python -m tlhelpers.instructor.grade --all --jobs 8             # every assignment
    python -m tlhelpers.instructor.grade --all --scheduler tcp://10.0.0.5:8786   # a Dask cluster
    python -m tlhelpers.instructor.grade 03-feature-extraction --student ada --force

Each submission (``submitted/<student>/<assignment>/``) is graded by ``nbgrader autograde``
in its own throwaway folder inside a bubblewrap sandbox (``tlhelpers.instructor.worker``),
against a private copy of the assignment's source and a private gradebook. This process is
the only writer of the real course (``tlhelpers.instructor.writer``): it copies each result
(scores, comments, late penalty, timestamp, the autograded notebook) into ``gradebook.db``
and ``autograded/<student>/<assignment>/``, one submission at a time, so the Formgrader,
``nbgrader generate_feedback`` and ``nbgrader export`` work as after ``nbgrader autograde``.

A rerun grades only new or changed submissions (a content hash of the submission, the
assignment's source, nbgrader_config.py, the whole tlhelpers package, nbgrader's version
and the limits, kept in ``autograded/.tlh-grading.json``); ``--force`` regrades everything.
Exit status: 0 when every submission was graded, 1 when some could not be (each is named,
with the reason, at the end and in nbgrader.log), 2 on a usage error, 3 when no sandbox
can start and ``--unsandboxed`` was not given.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tlhelpers.instructor import bwrap, worker
from tlhelpers.instructor.contract import Job, Kind, Limits, Result
from tlhelpers.instructor.course import Course, State, content_hash, notebook_problem, read_tree
from tlhelpers.instructor.writer import course_log, write_result

log = logging.getLogger("tlhelpers.grade")


@dataclass
class Outcome:
    """What a run did: the results graded, the results not graded, and how many were unchanged."""

    graded: list[Result] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)
    skipped: int = 0


# --------------------------------------------------------------------------- the jobs
def grading_rules(config: bytes, limits: Limits) -> dict[str, bytes]:
    """Return everything besides the submission and its source that decides a grade, as a tree to hash.

    nbgrader_config.py, every file of the tlhelpers package this process grades with
    (hidden tests call ``forbid`` and the reference helpers; the policy's preprocessors
    live there too), nbgrader's version, and the limits: after an upgrade or with another
    cell time limit, a rerun regrades instead of keeping grades from the old rules.
    """
    import nbgrader

    package = read_tree(Path(bwrap.package_dir()))
    return {"nbgrader_config.py": config, **{f"tlhelpers/{rel}": blob for rel, blob in package.items()},
            "nbgrader.version": nbgrader.__version__.encode(), "limits": limits.as_text().encode()}


def _jobs(course: Course, assignments: list[str], students, *, limits: Limits, sandboxed: bool, force: bool,
          state: State, outcome: Outcome) -> list[Job]:
    """Return a Job for every new or changed submission; record unreadable ones as failures."""
    config = course.config
    rules = grading_rules(config, limits)
    pending = []
    for assignment in assignments:
        source, duedate = read_tree(course.source_dir(assignment)), course.duedate(assignment)
        for student, folder in course.submissions(assignment, students):
            job = Job(student, assignment, read_tree(folder), source, config, limits, duedate, sandboxed)
            job.digest = content_hash(job.files, source, rules)
            if not force and state.current(job.key, job.digest) and (course.root / "autograded" / job.key).is_dir():
                outcome.skipped += 1
                continue
            problems = [p for rel, blob in job.files.items() if rel.endswith(".ipynb")
                        for p in [notebook_problem(f"submitted/{job.key}/{rel}", blob)] if p]
            if problems:
                outcome.failed.append(Result.failure(job, Kind.NOT_A_NOTEBOOK, "; ".join(problems)))
                continue
            pending.append(job)
    return pending


# --------------------------------------------------------------------------- running them
def _local_pool(jobs: int):
    """Return (pool, submit, wait, close) for ``jobs`` threads of this process."""
    pool = cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade")

    def wait(futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close():
        pool.shutdown(wait=True, cancel_futures=True)
    return pool, (lambda job: pool.submit(worker.grade_one, job)), wait, close


def _dask_pool(address: str):
    """Return (client, submit, wait, close) for the workers of the Dask scheduler at ``address``."""
    from distributed import Client, wait as dask_wait

    client = Client(address, timeout="30s")

    def submit(job: Job):
        return client.submit(worker.grade_one, job, pure=False,
                             key=f"grade-{job.assignment}-{job.student}-{time.monotonic_ns()}")

    def wait(futures):
        return dask_wait(list(futures), return_when="FIRST_COMPLETED").done
    return client, submit, wait, client.close


def _result(future, job: Job) -> Result:
    try:
        return future.result()
    except Exception as err:  # e.g. KilledWorker: a Dask task whose workers kept dying
        return Result.failure(job, Kind.WORKER_LOST, f"{type(err).__name__}: {err} (the worker was lost)", host="?")


def _run_all(pending: list[Job], submit, wait, *, retries: int, on_result, on_retry) -> None:
    """Grade every job; retry a job whose result's kind is retryable, at most ``retries`` times."""
    active = {submit(job): job for job in pending}
    while active:
        for future in wait(active):
            job = active.pop(future)
            result = _result(future, job)
            job.tries += 1
            if result.kind.retryable and job.tries <= retries:
                on_retry(job, result)
                active[submit(job)] = job
            else:
                on_result(job, result)


def grade(course: Course, assignments: list[str], *, students: list[str] | None = None, jobs: int = 0,
          scheduler: str | None = None, force: bool = False, sandboxed: bool = True, retries: int = 1,
          limits: Limits = Limits(), progress: bool = True) -> Outcome:
    """Grade every new or changed submission of ``assignments``; this process writes every result."""
    from tqdm.auto import tqdm

    state, outcome = State(course), Outcome()
    pending = _jobs(course, assignments, students, limits=limits, sandboxed=sandboxed, force=force, state=state,
                    outcome=outcome)
    where = f"Dask scheduler {scheduler}" if scheduler else f"{jobs or os.cpu_count() or 1} local job(s)"
    print(f"grading {len(pending)} submission(s) of {', '.join(assignments) or 'nothing'} on {where}"
          f"{'' if sandboxed else ' WITHOUT A SANDBOX'}; {outcome.skipped} unchanged since the last run "
          f"(--force regrades them)", file=sys.stderr)
    with course_log(course) as nblog:
        nblog.info("grading %d submission(s) on %s; sandbox %s; %d unchanged", len(pending), where,
                   "on" if sandboxed else "OFF (--unsandboxed)", outcome.skipped)
        for result in outcome.failed:
            nblog.info("%s: NOT GRADED (%s): %s", result.key, result.kind.value, result.reason)
        if not pending:
            return outcome
        gradebook = worker.empty_gradebook()
        for job in pending:
            job.gradebook = gradebook
        pool, submit, wait, close = _dask_pool(scheduler) if scheduler else _local_pool(jobs or os.cpu_count() or 1)
        bar = tqdm(total=len(pending), unit="submission", disable=not progress, file=sys.stderr, dynamic_ncols=True)

        def retry(job: Job, result: Result) -> None:
            nblog.warning("%s: %s; retrying (%d/%d)", job.key, result.reason, job.tries, retries)
            bar.write(f"retrying {job.key}: {result.reason}")

        try:
            _run_all(pending, submit, wait, retries=retries, on_retry=retry,
                     on_result=lambda job, result: _record(course, state, job, result, outcome, bar, nblog))
        finally:
            bar.close()
            close()
    return outcome


def _record(course: Course, state: State, job: Job, result: Result, outcome: Outcome, bar, nblog) -> None:
    """Write one result, log it, and remember its hash when it was graded."""
    if result.notebooks:  # nbgrader got as far as the gradebook (even a failed notebook scores)
        write_result(course, result)
    failed = "" if result.ok else f" -- FAILED: {result.reason}"
    nblog.info("%s: graded in %.1f s on %s%s\n%s", job.key, result.seconds, result.host, failed,
               "\n".join(f"    {line}" for line in result.log.splitlines()))
    if result.ok:
        outcome.graded.append(result)
        state.record(job.key, hash=job.digest, graded_at=dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                     host=result.host, seconds=round(result.seconds, 1))
        if result.dropped:
            bar.write(f"{job.key}: files too large to keep: {', '.join(result.dropped[:5])}")
    else:
        outcome.failed.append(result)
        bar.write(f"NOT GRADED {job.key}: {result.reason}")
    bar.update(1)
    bar.set_postfix(failed=len(outcome.failed), last=f"{job.key} {result.points():g} pts {result.seconds:.0f}s",
                    refresh=False)


# --------------------------------------------------------------------------- the command
def _private_address(address: str) -> bool:
    """Return True for a TLS scheduler address, or one on this machine's loopback (no one else can reach it)."""
    import ipaddress

    from distributed.comm.addressing import get_address_host, parse_address

    if parse_address(address)[0] in ("tls", "inproc"):
        return True
    host = get_address_host(address)
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
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
    return parser


def _refusal(args) -> str | None:
    """Return why grading must not start (no safe sandbox here), or None; warn about what is merely risky."""
    if not args.unsandboxed and not args.scheduler:
        problem = bwrap.sandbox_problem()
        if problem:
            return (f"error: cannot grade safely: {problem}.\nStudent code would run as you, with your files "
                    "(gradebook.db, solutions/, other submissions) and your network. Fix the sandbox, or pass "
                    "--unsandboxed to grade without one anyway.")
    if args.scheduler and not _private_address(args.scheduler):
        print(f"WARNING: {args.scheduler} is plain TCP: anyone who can reach it can read the submissions and "
              "hidden tests sent through it and run code on its workers. Use tls:// with certificates "
              "(docs/instructors.md, 'On several machines').", file=sys.stderr)
    if args.unsandboxed:
        print("WARNING: --unsandboxed: student code runs as you, with your files and network.", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    course = Course(Path(args.course).resolve())
    if not (course.root / "nbgrader_config.py").is_file():
        parser.error(f"no nbgrader_config.py in {course.root}: run this from the course root")
    if bool(args.assignment) == bool(args.all):
        parser.error("give one ASSIGNMENT or --all")
    if args.assignment and not course.source_dir(args.assignment).is_dir():
        parser.error(f"no solutions/{args.assignment}/ in {course.root}")
    refusal = _refusal(args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 3
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, disk_mb=args.disk_mb,
                    cell_timeout=args.cell_timeout)
    outcome = grade(course, course.assignments() if args.all else [args.assignment], students=args.student,
                    jobs=args.jobs, scheduler=args.scheduler, force=args.force, sandboxed=not args.unsandboxed,
                    retries=args.retries, limits=limits, progress=not args.no_progress)
    print(f"graded {len(outcome.graded)}, not graded {len(outcome.failed)}, unchanged {outcome.skipped}",
          file=sys.stderr)
    for result in outcome.failed:
        print(f"  NOT GRADED {result.key}: {result.reason}", file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
