"""The course folder as the grading command reads it: assignments, submissions, the rerun state.

Everything the command learns about the course comes from here: which submissions exist,
their bytes, whether a submitted notebook can be read at all, and which submissions were
already graded under the same rules (``autograded/.tlh-grading.json``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = ".tlh-grading.json"        # under autograded/ (ignored by git, not a student folder)
IGNORED = (".ipynb_checkpoints", "__pycache__")
log = logging.getLogger("tlhelpers.grade")


@dataclass
class Course:
    """An nbgrader course folder laid out as this repository is (solutions/, submitted/, autograded/)."""

    root: Path

    @property
    def db_url(self) -> str:
        """Return the SQLAlchemy address of the course's gradebook.db."""
        return f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def config(self) -> bytes:
        """Return nbgrader_config.py, the grading policy, as bytes."""
        return (self.root / "nbgrader_config.py").read_bytes()

    def source_dir(self, assignment: str) -> Path:
        """Return solutions/<assignment>/, the assignment's nbgrader source."""
        return self.root / "solutions" / assignment

    def assignments(self) -> list[str]:
        """Return the assignments with a source folder and at least one submission."""
        sub = self.root / "submitted"
        found = {p.name for p in sub.glob("*/*") if p.is_dir()} if sub.is_dir() else set()
        return sorted(a for a in found if self.source_dir(a).is_dir())

    def submissions(self, assignment: str, students: list[str] | None = None) -> list[tuple[str, Path]]:
        """Return (student, folder) for each submitted/<student>/<assignment>/ holding a notebook."""
        out = []
        for folder in sorted((self.root / "submitted").glob(f"*/{assignment}")):
            if folder.is_dir() and (students is None or folder.parent.name in students):
                if any(p.suffix == ".ipynb" for p in _files(folder)):
                    out.append((folder.parent.name, folder))
                else:
                    log.warning("No notebook in %s: skipped (scores zero in the export)", folder)
        return out

    def duedate(self, assignment: str) -> str | None:
        """Return the assignment's due date (ISO text) from gradebook.db; exit if it was never generated."""
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.db_url) as gb:
            try:
                a = gb.find_assignment(assignment)
            except MissingEntry:
                raise SystemExit(f"assignment {assignment!r} is not in gradebook.db: run "
                                 f"`nbgrader generate_assignment {assignment} --force` first (docs/instructors.md)")
            return a.duedate.isoformat() if a.duedate else None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not p.is_symlink() and not any(part in IGNORED for part in p.parts))


def read_tree(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` (checkpoints and caches left out): relative path -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in _files(folder)}


def content_hash(*trees: dict[str, bytes]) -> str:
    """Return a hash of the trees' file names and contents (not of the order they were read in)."""
    h = hashlib.sha256()
    for tree in trees:
        for rel in sorted(tree):
            h.update(rel.encode() + b"\0" + hashlib.sha256(tree[rel]).digest())
        h.update(b"\1")
    return h.hexdigest()


def notebook_problem(name: str, data: bytes) -> str | None:
    """Return why the submitted file ``name`` is not a notebook nbgrader can read, or None.

    nbgrader itself reports an unreadable notebook as "Please see the above traceback";
    this names the file and the JSON error instead, before any sandbox starts.
    """
    import nbformat

    try:
        text = data.decode("utf-8")
        json.loads(text)
    except UnicodeDecodeError as err:
        return f"{name} is not a notebook: not UTF-8 text ({err})"
    except ValueError as err:
        return f"{name} is not a notebook: not valid JSON ({err})"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises several kinds for JSON that is not a notebook
        return f"{name} is not a notebook: {type(err).__name__}: {str(err)[:300]}"
    return None


class State:
    """student/assignment -> {hash, graded_at, host, seconds}; written atomically by the writer."""

    def __init__(self, course: Course):
        self.path = course.root / "autograded" / STATE_FILE
        try:
            self.data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def current(self, key: str, digest: str) -> bool:
        """Return True when ``key`` was graded under the same hash."""
        return self.data.get(key, {}).get("hash") == digest

    def record(self, key: str, **entry) -> None:
        """Record ``key``'s grading and write the whole state file atomically."""
        self.data[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tlh-state-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
