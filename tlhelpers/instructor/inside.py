"""Run inside the sandbox: autograde the one submission against its private course, write result.json.

``python -m tlhelpers.instructor.inside PRIVATE_DIR`` is started by ``worker.grade_one``, never
by hand. It reads ``PRIVATE_DIR/job.json`` (student, assignment, due date, cell time limit),
runs nbgrader's own ``generate_assignment`` and ``autograde`` on ``PRIVATE_DIR/course``,
and writes the scores it finds in the private gradebook to ``PRIVATE_DIR/result.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def export(course: Path, student: str, assignment: str) -> dict:
    """Return the scores, comments, penalties and timestamp of one submission, from the private gradebook."""
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


def _api(course: Path, cell_timeout: int | None):
    """Return nbgrader's API on the private course, configured by its copy of nbgrader_config.py."""
    from nbgrader.apps.api import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    cfg.CourseDirectory.root = str(course)
    if cell_timeout:
        cfg.Execute.timeout = int(cell_timeout)
    return NbGraderAPI(config=cfg)


def inner(private: Path) -> int:
    """Autograde the one submission against a private course; write result.json; return the exit status."""
    import warnings

    # jsonschema (under nbformat and nbgrader) imports rfc3987_syntax eagerly, which builds ~35
    # parsers: 2-3 s of CPU in every grading process (python-jsonschema/jsonschema#1428). No
    # notebook or gradebook schema uses the IRI formats it checks; blocking it is the documented
    # sys.modules way to make that optional import fail.
    sys.modules.setdefault("rfc3987_syntax", None)

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's own SQLAlchemy chatter
    spec = json.loads((private / "job.json").read_text())
    course = private / "course"
    api = _api(course, spec.get("cell_timeout"))
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
        result.update(export(course, spec["student"], spec["assignment"]))
    except Exception as err:  # e.g. the submission never reached the gradebook
        result.setdefault("notebooks", {})
        result["export_error"] = f"{type(err).__name__}: {err}"
    (private / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        sys.exit(inner(Path(sys.argv[1])))
    sys.exit("usage: python -m tlhelpers.instructor.inside PRIVATE_DIR (run by worker.grade_one, not by hand)")
