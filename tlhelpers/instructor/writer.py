"""The single writer: copy one Result into gradebook.db, autograded/ and nbgrader.log.

Only the grading command calls these, one submission at a time, so the real gradebook
never sees two writers (no ``database is locked``) and a submission is never half written.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

from tlhelpers.instructor.contract import Result
from tlhelpers.instructor.course import STATE_FILE, Course

LOG_FORMAT = "[tlhelpers.grade | %(levelname)s | %(asctime)s] %(message)s"  # nbgrader's own log line
LOG_DATES = "%Y-%m-%d %H:%M:%S"


@contextlib.contextmanager
def course_log(course: Course) -> Iterator[logging.Logger]:
    """Yield a logger whose records go to the course's nbgrader.log, in nbgrader's format, and nowhere else."""
    logger = logging.getLogger("tlhelpers.grade.nbgrader_log")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(course.root / "nbgrader.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATES))
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def _write_grades(gb, result: Result) -> None:
    """Copy scores, comments and the late penalty of ``result`` into the open gradebook ``gb``."""
    for name, data in result.notebooks.items():
        nb = gb.find_submission_notebook(name, result.assignment, result.student)
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


def _write_gradebook(course: Course, result: Result) -> None:
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    student, assignment = result.student, result.assignment
    with warnings.catch_warnings(), Gradebook(course.db_url) as gb:
        warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy chatter
        try:
            gb.find_student(student)
        except MissingEntry:
            gb.add_student(student)
        stamp = parse_utc(result.timestamp) if result.timestamp else None
        try:
            sub = gb.find_submission(assignment, student)
            if stamp is not None:
                sub.timestamp = stamp
        except MissingEntry:
            gb.update_or_create_submission(assignment, student, **({"timestamp": stamp} if stamp else {}))
        try:
            _write_grades(gb, result)
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise


def _replace_folder(dest: Path, files: dict[str, bytes]) -> None:
    """Make ``dest`` hold exactly ``files``, swapped in whole (never a half-written folder)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    for rel, blob in files.items():
        path = new / rel
        if Path(rel).name == STATE_FILE or not str(path.resolve()).startswith(str(new.resolve()) + os.sep):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    os.chmod(new, 0o755)
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def write_result(course: Course, result: Result) -> None:
    """Copy one result into gradebook.db and autograded/ (called by the grading command only)."""
    _write_gradebook(course, result)
    dest = course.root / "autograded" / result.student / result.assignment
    if result.ok and result.autograded is not None:
        _replace_folder(dest, result.autograded)
    elif dest.exists():  # as nbgrader: a submission that failed leaves no autograded folder
        shutil.rmtree(dest)
