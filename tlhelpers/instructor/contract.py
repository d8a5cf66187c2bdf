"""The grading contract: what a worker is asked to grade (``Job``) and what it answers (``Result``).

The command (``grade``), the workers (``worker.grade_one``, in a local thread or on a Dask
worker), ``bench`` and the tests all speak these types. Both are plain dataclasses of
bytes, text and numbers, so they travel to another machine as they are. What went wrong is
a ``Kind``, not a sentence: the command retries by kind, and reports the sentence.
"""
from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field


class Kind(enum.Enum):
    """How the grading of one submission ended."""

    GRADED = "graded"                  # nbgrader scored it (a failing test is still GRADED)
    OVER_LIMIT = "over a limit"        # wall time, memory or disk: stopped by the watchdog
    CRASHED = "crashed"                # the grading process was killed (a signal, the OOM killer)
    WORKER_LOST = "worker lost"        # the machine grading it went away (Dask's KilledWorker)
    NOT_A_NOTEBOOK = "not a notebook"  # a submitted .ipynb that is not a readable notebook
    NO_SANDBOX = "no sandbox"          # bubblewrap missing on the worker
    FAILED = "failed"                  # nbgrader could not grade it (e.g. a renamed notebook)
    GRADER_ERROR = "grader error"      # an error in the worker itself (reported, never raised)

    @property
    def retryable(self) -> bool:
        """Return True when the machine, not the submission, is to blame: grading it again may work."""
        return self in (Kind.CRASHED, Kind.WORKER_LOST)


@dataclass(frozen=True)
class Limits:
    """What one submission may use; all of it is part of the rerun hash (a changed limit regrades)."""

    timeout_s: float = 3600          # wall time of the whole submission
    memory_mb: int = 8192            # resident memory of all its processes together (0: none)
    disk_mb: int = 2048              # all it writes, and its largest file (0: none)
    cell_timeout: int | None = None  # seconds per cell (None: nbgrader_config.py's Execute.timeout)
    processes: int | None = None     # processes and threads (None: the default when graded as root)
    threads: int = 1                 # TLH_THREADS / OMP_NUM_THREADS of the kernel

    def as_text(self) -> str:
        """Return the limits as stable text (for the rerun hash)."""
        return repr(sorted(asdict(self).items()))


@dataclass
class Job:
    """One submission to grade, with everything a worker needs (no shared file system)."""

    student: str
    assignment: str
    files: dict[str, bytes]           # the submission folder: relative path -> bytes
    source: dict[str, bytes]          # the assignment's source folder, same form
    config: bytes                     # nbgrader_config.py
    limits: Limits = field(default_factory=Limits)
    duedate: str | None = None        # ISO text
    sandboxed: bool = True
    gradebook: bytes | None = None    # an empty stamped gradebook (worker.empty_gradebook)
    digest: str = ""                  # the rerun hash (grade.job_digest)
    tries: int = 0

    @property
    def key(self) -> str:
        """Return ``student/assignment``, the submission's name in logs and the state file."""
        return f"{self.student}/{self.assignment}"


@dataclass
class Result:
    """What grading one submission produced: scores and files for the writer, or why not."""

    student: str
    assignment: str
    kind: Kind
    reason: str = ""                  # in words, for the instructor (empty when GRADED)
    host: str = field(default_factory=lambda: os.uname().nodename)
    seconds: float = 0.0
    log: str = ""                     # nbgrader's log of this submission
    timestamp: str | None = None
    notebooks: dict = field(default_factory=dict)    # name -> penalty, grades, comments (inside.export)
    autograded: dict[str, bytes] | None = None       # the autograded folder: relative path -> bytes
    dropped: list[str] = field(default_factory=list)  # files too large to bring back

    @classmethod
    def failure(cls, job: Job, kind: Kind, reason: str, **more) -> "Result":
        """Return the result of a submission that could not be graded."""
        return cls(job.student, job.assignment, kind, reason, **more)

    @property
    def ok(self) -> bool:
        """Return True when the submission was graded."""
        return self.kind is Kind.GRADED

    @property
    def key(self) -> str:
        """Return ``student/assignment``."""
        return f"{self.student}/{self.assignment}"

    def points(self) -> float:
        """Return the automatic points earned, over every notebook and test cell."""
        return sum((g["auto_score"] or 0) for nb in self.notebooks.values() for g in nb["grades"].values())
