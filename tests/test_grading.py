"""A simulated class, graded end to end by the real nbgrader commands (docs/instructors.md).

One temporary course folder holds a copy of nbgrader_config.py, solutions/ and course/,
plus a small "probe" assignment built here (it needs a planted cache and a hidden test
that fails on its own). The class is registered, submits, and is graded with ONE call of
the course's grading command, ``python -m tlhelpers.instructor.grade --all`` (sandboxed,
2 jobs; TLH_GRADING_WITH=nbgrader grades with one plain ``nbgrader autograde "*"``
instead: tests/test_grade_command.py proves both give the same grades), then feedback
and a CSV export follow; the tests below read the gradebook, the autograded notebooks,
the feedback pages, the CSV and the log.

Students, on every real assignment: the untouched release (zero on every test); on the
host (and on assignments named in TLH_GRADING_ASSIGNMENTS) also the solution (full marks;
nbval runs every solution with its hidden tests, so the rest would only repeat that run). On the host assignment (00-setup if present; it is the fastest):
a partly correct, noisy submission (stderr warnings, tqdm bars, 50 MB printed, non-ASCII),
tampered test cells (edited to ``pass`` with more points and a forged checksum, deleted,
tagged ``skip-execution``, duplicated), an infinite loop, a kernel crash, three kinds of
cheating (objects equal to anything, wrong values dressed as the right type, patched
comparison functions and test helpers), IPython input transformers, a renamed notebook
and a student who submitted nothing. TLH_GRADING_AUDIT=1 runs the comparison cheats on
every assignment, not only the host; TLH_GRADING_ASSIGNMENTS=00-setup,... limits which real
assignments take part (all by default).

The cost is dominated by the notebooks themselves: every real assignment's release runs
once, the host's notebook about a dozen times.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from support.cheats import (NON_ASCII, TAMPERS, disguised_submission, leaky_submission, liar_submission,
                            noisy_submission,
                            patched_checks_submission, prefixed_submission, tamper_plans, tampered_submission,
                            transformer_submission)
from support.course import command_env, grades, make_course, nbgrader, read_csv, submit, write_students_csv
from support.notebooks import (Assignment, assignment_ids, find, grade_id, is_test, meta, notebooks, read,
                               secret_lines, write)
from support.paths import ARTIFACTS, COURSE, CONFIG, SOLUTIONS
from support.probes import build_probe

pytestmark = pytest.mark.slow  # end to end: outside the fast tier

REAL = [aid for aid in assignment_ids()
        if len(notebooks(SOLUTIONS / aid)) == 1 and len(notebooks(COURSE / aid)) == 1]
if os.environ.get("TLH_GRADING_ASSIGNMENTS"):  # e.g. "00-setup,01-domains-and-tasks" for a quicker local run
    REAL = [aid for aid in REAL if aid in os.environ["TLH_GRADING_ASSIGNMENTS"].split(",")]
# the host of the tampering and cheating cases is a cheap notebook; a run limited to other
# assignments (TLH_GRADING_ASSIGNMENTS) grades only their solution and release
HOST = next((aid for aid in ("00-setup", "01-domains-and-tasks") if aid in REAL), None)
CELL_TIMEOUT = 90   # seconds per cell for this run: above any one cell of a <= 60 s notebook (config: 120)
# "command": python -m tlhelpers.instructor.grade (the way docs/instructors.md grades a class);
# "nbgrader": plain sequential `nbgrader autograde "*"`
GRADER = os.environ.get("TLH_GRADING_WITH", "command")
# Solutions are autograded for the host and for assignments named in TLH_GRADING_ASSIGNMENTS:
# nbval already runs every solution with its hidden tests (tests of a solution that fail,
# fail there), so grading them all again here would only repeat the course's run time; the
# untouched releases are graded for every assignment (no test may pass without the work).
SOLVED = [aid for aid in REAL if aid == HOST or os.environ.get("TLH_GRADING_ASSIGNMENTS")]
# The cheats run on the host assignment only (each costs a full run of the notebook). Set
# TLH_GRADING_AUDIT=1 to run them on every assignment: an audit of all test cells.
AUDIT = REAL if os.environ.get("TLH_GRADING_AUDIT") else ([HOST] if HOST else [])
LOOP = "while True:  # an infinite loop\n    pass"
CRASH = "import os\nos._exit(1)  # the kernel dies"
NAMES = [("Zoë", "Müller"), ("Łukasz", "Wójcik"), ("Søren", "Ødegård"), ("Ana", "Núñez"), ("李", "小龙"),
         ("Amélie", "Brontë"), ("Jürgen", "Straße"), ("Chloé", "Dvořák")]


POISON = '''import os, pathlib
import torch
import tlhelpers as tlh
# plant "features" that are all zeros under the exact cache key of the reference computation
folder = pathlib.Path(os.environ.get("TLH_CACHE_DIR") or pathlib.Path.home() / ".cache" / "tlhelpers")
folder.mkdir(parents=True, exist_ok=True)
key = tlh.features._content_key(model, images, "3", True)
torch.save(torch.zeros(6, 8), folder / f"{key}.pt")
def pooled_features(model, images):
    return torch.zeros(len(images), 8)  # wrong, unless the check reads the planted cache'''


# --- the class --------------------------------------------------------------------------------
@dataclass
class Case:
    student: str
    assignment: str
    notebook: str
    nb: nbformat.NotebookNode | None
    expect: dict[str, float] | None = None   # grade_id -> exact score; None: reported only
    flagged: bool | None = False              # flagged for manual review?
    filename: str | None = None
    info: dict = field(default_factory=dict)


@dataclass
class GradedClass:
    course: Path
    cases: dict[str, Case]
    autograde: object
    feedback: object
    csv: list[dict[str, str]]
    log: str
    seconds: dict[str, float]

    def grades(self, student: str) -> dict:
        case = self.cases[student]
        return grades(self.course, case.assignment, student, case.notebook)

    def autograded(self, student: str) -> nbformat.NotebookNode:
        case = self.cases[student]
        return read(self.course / "autograded" / student / case.assignment / f"{case.notebook}.ipynb")

    def feedback_html(self, student: str) -> str:
        case = self.cases[student]
        return (self.course / "feedback" / student / case.assignment / f"{case.notebook}.html").read_text("utf-8")


def _cases(probe: Assignment) -> list[Case]:
    cases = []
    for aid in REAL:
        a = Assignment.load(aid)
        if aid in SOLVED:
            cases.append(Case(f"solution-{aid}", aid, a.name, a.solved(), {g: p for g, p in a.tests.items()}))
        cases.append(Case(f"release-{aid}", aid, a.name, a.student_copy(), {g: 0.0 for g in a.tests}))
    if HOST:
        a = Assignment.load(HOST)
        k = max(1, len(a.answers) // 2)
        passing = set(a.tests_before_answer(k))
        cases.append(Case("partial-noisy", HOST, a.name, noisy_submission(a, k),
                          {g: (p if g in passing else 0.0) for g, p in a.tests.items()}, info={"upto": k}))
        for i, plan in enumerate(tamper_plans(a), 1):
            cases.append(Case(f"tamper-{i}", HOST, a.name, tampered_submission(a, plan),
                              {g: 0.0 for g in a.tests}, info={"plan": plan}))
        before_last = set(a.tests_before_answer(len(a.answers) - 1))
        for sid, prefix, flagged in [("infinite-loop", LOOP, False), ("kernel-crash", CRASH, True)]:
            cases.append(Case(sid, HOST, a.name, prefixed_submission(a, prefix),
                              {g: (p if g in before_last else 0.0) for g, p in a.tests.items()}, flagged))
        cases.append(Case("cheat-patch", HOST, a.name, patched_checks_submission(a), None, True))
        cases.append(Case("cheat-transform", HOST, a.name, transformer_submission(a), None, True))
        cases.append(Case("cheat-leak", HOST, a.name, leaky_submission(a), None, True))
        cases.append(Case("renamed", HOST, a.name, a.solved(), None, None, filename=f"{a.name}-Copy1.ipynb"))
        cases.append(Case("absent", HOST, a.name, None, None, None))
    for aid in AUDIT:
        a = Assignment.load(aid)
        cases.append(Case(f"cheat-liar-{aid}", aid, a.name, liar_submission(a), {g: 0.0 for g in a.tests}, True))
        cases.append(Case(f"cheat-disguise-{aid}", aid, a.name, disguised_submission(a), {g: 0.0 for g in a.tests},
                          True))
    cases.append(Case("solution-probe", "probe", "probe", probe.solved(), {"correct_pooled_features": 2.0,
                                                                          "correct_square": 1.0}))
    cases.append(Case("probe-hidden-fail", "probe", "probe", probe.student_copy(
        {"pooled_features": probe.answer("pooled_features"), "square": "def square(x):\n    return abs(x) * x"}),
        {"correct_pooled_features": 2.0, "correct_square": 0.0}))
    poisoned = probe.student_copy({"pooled_features": POISON, "square": probe.answer("square")})
    cases.append(Case("probe-poisoner", "probe", "probe", poisoned,
                      {"correct_pooled_features": 0.0, "correct_square": 1.0}, True))
    return cases


@pytest.fixture(scope="module")
def probe_source(tmp_path_factory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe-src") / "probe")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, probe_source) -> GradedClass:
    root = tmp_path_factory.mktemp("class")
    course = make_course(root / "course", REAL, extra={"probe": probe_source})
    seconds = {}

    # register the class and the assignments, then build the gradebook (as docs/instructors.md)
    start = time.perf_counter()
    nbgrader(course, "generate_assignment", "*", "--force")
    seconds["generate_assignment"] = time.perf_counter() - start
    probe = Assignment.load("probe", course / "solutions", course / "course")
    cases = {c.student: c for c in _cases(probe)}
    students = {sid: NAMES[i % len(NAMES)] for i, sid in enumerate(sorted(cases)) if sid != "solution-probe"}
    write_students_csv(root / "students.csv", students)
    nbgrader(course, "db", "student", "import", str(root / "students.csv"))
    first, last = NAMES[0]
    nbgrader(course, "db", "student", "add", "solution-probe", f"--first-name={first}", f"--last-name={last}",
             "--email=probe@example.org")
    listed = nbgrader(course, "db", "student", "list").stdout
    assert "solution-probe (Müller, Zoë)" in listed and ("partial-noisy" in listed or HOST is None), listed
    nbgrader(course, "db", "assignment", "add", "probe", "--duedate=2100-01-01 17:00:00 UTC")  # updates it
    for case in cases.values():
        submit(course, case.student, case.assignment, case.notebook, case.nb, filename=case.filename)

    start = time.perf_counter()
    if GRADER == "nbgrader":
        auto = nbgrader(course, "autograde", "*", f"--Execute.timeout={CELL_TIMEOUT}", check=False, timeout=5400)
    else:
        auto = grade_command(course, "--all", "--jobs", "2", f"--cell-timeout={CELL_TIMEOUT}", timeout=5400)
    seconds["autograde"] = time.perf_counter() - start
    start = time.perf_counter()
    feedback = nbgrader(course, "generate_feedback", "*", check=False)
    seconds["generate_feedback"] = time.perf_counter() - start
    nbgrader(course, "export", "--to", str(root / "grades.csv"))
    log = (course / "nbgrader.log").read_text("utf-8", errors="replace")
    print(f"\nsimulated class: {len(cases)} students; seconds: "
          + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    per = per_student_seconds(course, log)
    print("autograde seconds per student: " + ", ".join(f"{s} {t:.0f}" for s, t in per))
    return GradedClass(course, cases, auto, feedback, read_csv(root / "grades.csv"), log, seconds)


def grade_command(course: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -m tlhelpers.instructor.grade ARGS`` in ``course``, sandboxed where bwrap can be had."""
    from support.apt import sandbox_problem

    problem = sandbox_problem(ARTIFACTS / "apt-bubblewrap.log")
    if problem:
        print(f"\ngrading the simulated class WITHOUT a sandbox: {problem}")
    env = command_env(course)
    return subprocess.run([sys.executable, "-m", "tlhelpers.instructor.grade", *args, "--no-progress",
                           *(["--unsandboxed"] if problem else [])], cwd=course, env=env, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=timeout)


def per_student_seconds(course: Path, log: str) -> list[tuple[str, float]]:
    """(student, seconds) for each submission autograded: the command's state file, or nbgrader.log."""
    from datetime import datetime

    from tlhelpers.instructor.course import Course, State

    recorded = State(Course(course)).data
    if recorded:
        return [(key.split("/")[0], entry["seconds"]) for key, entry in sorted(recorded.items())]
    marks = re.findall(r"\[AutogradeApp \| \w+ \| ([\d-]+ [\d:]+)\] Creating/updating student with ID '([^']+)'", log)
    end = re.findall(r"\[AutogradeApp \| \w+ \| ([\d-]+ [\d:]+)\]", log)
    stamps = [(sid, datetime.strptime(t, "%Y-%m-%d %H:%M:%S")) for t, sid in marks]
    if end:
        stamps.append(("end", datetime.strptime(end[-1], "%Y-%m-%d %H:%M:%S")))
    return [(a[0], (b[1] - a[1]).total_seconds()) for a, b in zip(stamps, stamps[1:])]


needs_host = pytest.mark.skipif(HOST is None, reason="no real assignment in solutions/ yet")


def _scores(g: GradedClass, student: str) -> dict[str, float]:
    return {gid: cg.score for gid, cg in g.grades(student).items()}


def _check_expected(g: GradedClass, student: str) -> None:
    case = g.cases[student]
    got = _scores(g, student)
    wrong = {gid: (got.get(gid), want) for gid, want in case.expect.items() if got.get(gid) != want}
    assert not wrong, f"{student}: grade_id -> (got, expected): {wrong}"


# --- the commands themselves ------------------------------------------------------------------
def test_grading_commands_succeed_except_for_the_unreadable_submission(graded):
    """autograde reports exactly one failed submission (the renamed notebook); feedback succeeds."""
    out = graded.autograde.stdout + graded.autograde.stderr
    if GRADER == "nbgrader":
        errors = set(re.findall(r"There was an error processing assignment '([^']+)' for student '([^']+)'", out))
    else:
        errors = {(a, s) for s, a in re.findall(r"NOT GRADED ([^/\s]+)/(\S+):", out)}
    expected = {(HOST, "renamed")} if HOST else set()
    assert errors == expected, graded.autograde.stderr[-6000:]
    assert graded.autograde.returncode == (1 if expected else 0)
    assert graded.feedback.returncode == 0, graded.feedback.stderr[-6000:]


@pytest.mark.parametrize("aid", SOLVED)
def test_solution_scores_full_marks(graded, aid):
    _check_expected(graded, f"solution-{aid}")
    assert not any(cg.needs_manual for gid, cg in graded.grades(f"solution-{aid}").items()
                   if gid in graded.cases[f"solution-{aid}"].expect), "honest work must not be flagged"


@pytest.mark.parametrize("aid", REAL)
def test_untouched_release_scores_zero_on_every_test(graded, aid):
    _check_expected(graded, f"release-{aid}")


def test_probe_solution_scores_full_marks(graded):
    _check_expected(graded, "solution-probe")


@needs_host
def test_partly_correct_submission_gets_exactly_the_points_of_the_tests_it_passes(graded):
    """The first half of the answers are right: exactly the tests before the next answer pass."""
    _check_expected(graded, "partial-noisy")
    assert any(v > 0 for v in graded.cases["partial-noisy"].expect.values())


@needs_host
@pytest.mark.parametrize("how", TAMPERS)
def test_tampered_test_cells_are_restored_and_run(graded, how):
    a = Assignment.load(HOST)
    for student, case in graded.cases.items():
        for gid, kind in case.info.get("plan", {}).items():
            if kind != how:
                continue
            _check_expected(graded, student)
            nb = graded.autograded(student)
            real = [c for c in nb.cells if grade_id(c) == gid]
            assert len(real) == 1, f"{how}: expected the one restored {gid} cell, found {len(real)}"
            restored = real[0]
            original = find(a.source, gid)
            assert restored.source.endswith(original.source), f"{how}: {gid} source was not restored"
            assert float(meta(restored)["points"]) == float(meta(original)["points"])
            assert any(o.output_type == "error" for o in restored.outputs), f"{how}: {gid} did not run (no error)"
            assert graded.grades(student)[gid].max_score == float(meta(original)["points"])
            return
    pytest.skip(f"no test cell to {how} in {HOST}")


@needs_host
def test_infinite_loop_hits_the_cell_time_limit_and_the_class_is_still_graded(graded):
    _check_expected(graded, "infinite-loop")
    nb = graded.autograded("infinite-loop")
    looped = find(nb, Assignment.load(HOST).answers[-1])
    assert any(o.output_type == "error" and o.ename in ("CellTimeoutError", "KeyboardInterrupt")
               for o in looped.outputs), [o.get("ename") for o in looped.outputs]
    assert "Timeout waiting for execute reply" in graded.log
    graded_students = {p.name for p in (graded.course / "autograded").iterdir() if p.is_dir()}
    assert graded_students == set(graded.cases) - {"renamed", "absent"}


@needs_host
def test_kernel_crash_fails_the_rest_but_keeps_earlier_points_and_other_students(graded):
    _check_expected(graded, "kernel-crash")
    nb = graded.autograded("kernel-crash")
    assert any(o.get("ename") == "DeadKernelError" for c in nb.cells for o in c.get("outputs", []))
    assert (graded.course / "feedback" / "kernel-crash").is_dir(), "the crashed student still gets feedback"


@needs_host
def test_huge_output_is_cut_and_stderr_chatter_does_not_zero_a_correct_answer(graded):
    _check_expected(graded, "partial-noisy")
    case = graded.cases["partial-noisy"]
    path = graded.course / "autograded" / "partial-noisy" / HOST / f"{case.notebook}.ipynb"
    assert path.stat().st_size < 5_000_000, f"autograded notebook is {path.stat().st_size:,} bytes"
    nb = graded.autograded("partial-noisy")
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Output truncated" in text
    chatty = [grade_id(c) for c in nb.cells if is_test(c)
              and any("harmless" in o.get("text", "") for o in c.get("outputs", []))]
    passed = [g for g, p in case.expect.items() if p > 0]
    assert set(passed) & set(chatty), f"the chatter should reach a passing test cell: {chatty} vs {passed}"


CHEATS = [f"cheat-{kind}-{aid}" for aid in AUDIT for kind in ("liar", "disguise")]


@pytest.mark.parametrize("student", CHEATS)
def test_cheating_by_comparison_tricks_gets_no_credit(graded, student):
    """Objects equal to anything, and wrong values dressed as the right type, earn nothing.

    liar: every answer returns an object whose ==, <, >, allclose (``__torch_function__``)
    and numpy functions all say yes. disguise: every answer returns a WRONG value (zeros,
    n + 1, a reversed list) as a subclass of the right type (torch.Tensor, int, float,
    str, list, tuple, dict) whose comparisons, torch.allclose/equal/isclose included, all
    say "equal". Only an exact type check stops the second: ``type(x) is torch.Tensor``,
    ``type(n) is int``, ``type(names) is list and all(type(s) is str for s in names)``.
    """
    case = graded.cases[student]
    got = _scores(graded, student)
    fooled = {gid: got[gid] for gid in case.expect if got.get(gid)}
    assert not fooled, (f"{student}: these test cells of {case.assignment} gave credit to wrong answers; check "
                        f"exact types (type(x) is torch.Tensor, type(n) is int, type(xs) is list) before "
                        f"comparing: {fooled}")


@needs_host
@pytest.mark.parametrize("student", CHEATS + ["cheat-patch", "cheat-transform", "cheat-leak", "probe-poisoner",
                                     "kernel-crash"])
def test_code_that_touches_the_grader_is_flagged_for_manual_review(graded, student):
    assert all(cg.needs_manual for cg in graded.grades(student).values())
    assert re.search(rf"FLAGGED for manual review: student {re.escape(student)}\b", graded.log)


def test_honest_students_are_not_flagged(graded):
    honest = [s for s, c in graded.cases.items() if c.flagged is False]
    flagged = [s for s in honest if re.search(rf"FLAGGED for manual review: student {re.escape(s)}\b", graded.log)]
    assert not flagged, flagged


@needs_host
@pytest.mark.parametrize("student", ["cheat-patch", "cheat-transform"])
def test_what_in_process_cheating_still_earns_is_held_for_review(graded, student):
    """Patched checks and input transformers cannot always be stopped by a test cell (docs/instructors.md
    says so). Whatever they earn must never count unseen: every credited cell is marked for manual
    grading, and the flag in the log names the cell of the student's own code that did it."""
    cells = graded.grades(student)
    credited = {gid: cg.score for gid, cg in cells.items() if cg.score}
    print(f"{student}: credit before manual review: {credited or 'none'}")
    assert all(cells[gid].needs_manual for gid in credited), f"{student}: credit not held for review: {credited}"
    flag = re.search(rf"FLAGGED for manual review: student {re.escape(student)}, [^:]+: (.+)", graded.log)
    assert flag, f"{student} is not flagged in the log"
    if student == "cheat-transform":
        assert "input/AST transformers" in flag.group(1), flag.group(1)


@needs_host
def test_missing_notebook_scores_zero_and_is_reported(graded):
    rows = {r["student_id"]: r for r in graded.csv if r["assignment"] == HOST}
    for student in ("renamed", "absent"):
        assert float(rows[student]["score"]) == 0.0, rows[student]
    assert rows["absent"]["timestamp"] == ""
    assert "Skipping unknown notebook" in graded.log and "renamed" in graded.log
    assert all(cg.score == 0 and cg.needs_manual for cg in graded.grades("renamed").values())


@needs_host
def test_non_ascii_text_round_trips(graded):
    nb = graded.autograded("partial-noisy")
    answer = find(nb, Assignment.load(HOST).answers[0])
    assert NON_ASCII in answer.source
    assert NON_ASCII in graded.feedback_html("partial-noisy")
    rows = {r["student_id"]: r for r in graded.csv}
    for student, row in rows.items():
        if student in graded.cases and student != "solution-probe":
            assert (row["first_name"], row["last_name"]) in NAMES, row


def test_feedback_for_every_graded_student_names_the_failures(graded):
    """Every graded student gets a page listing each test cell with its score; failures show the error."""
    for student, case in graded.cases.items():
        if not (graded.course / "autograded" / student).is_dir():
            continue
        html = graded.feedback_html(student)
        got = graded.grades(student)
        for gid, cg in got.items():
            listed = f'href="#{gid}">'
            assert listed in html, f"{student}: {gid} is not listed in the feedback"
            entry = html[html.index(listed):html.index(listed) + 200]
            assert f"(Score: {round(cg.score, 2)} / {round(cg.max_score, 2)})" in entry, (student, gid, entry)
        if student.startswith("release-"):
            assert "NotImplementedError" in html, f"{student}: the failure is not shown"


def test_feedback_shows_a_hidden_failure_but_not_the_hidden_test(graded):
    html = graded.feedback_html("probe-hidden-fail")
    assert "a negative number squared is positive" in html, "the failure message must reach the student"
    assert "square(-4)" not in html and "HIDDEN TESTS" not in html
    assert "square(3) should be 9" in html, "visible tests stay visible"


def test_feedback_never_contains_hidden_test_code(graded):
    """No line that exists only inside a hidden-test region appears in any feedback page."""
    import html as html_lib

    hidden = {aid: secret_lines(Assignment.load(aid).source)[1] for aid in REAL}
    checked = 0
    for student, case in graded.cases.items():
        if case.assignment not in hidden or not (graded.course / "feedback" / student).is_dir():
            continue
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", graded.feedback_html(student)))
        shown = {line.strip() for line in text.split("\n")}
        own = {line.strip() for cell in case.nb.cells for line in cell.source.split("\n")}  # the student's
        leaked = sorted(hidden[case.assignment] & shown - own)
        assert not leaked, f"{student}: hidden test code in feedback: {leaked[:3]}"
        checked += 1
    assert checked or not REAL


@needs_host
def test_feedback_carries_no_hidden_test_out_however_the_submission_encodes_it(graded):
    """A pre_run_cell hook, the input history, base64, rot13, reversed text, a display update, an error.

    The submission did capture the hidden tests (its autograded notebook, which only the
    instructor sees, holds them); its feedback page holds none, decoded or not.
    """
    import base64
    import binascii
    import codecs
    import html as html_lib

    hidden = {line for line in secret_lines(Assignment.load(HOST).source)[1] if len(line) >= 12}
    captured = "\n".join(str(o) for c in graded.autograded("cheat-leak").cells for o in c.get("outputs", []))
    assert any(line in captured for line in hidden), "the cheat captured nothing: this test would prove nothing"
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", graded.feedback_html("cheat-leak")))
    views = [text, codecs.decode(text, "rot13"), text[::-1]]
    for token in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        try:
            views.append(base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    leaked = sorted(line for line in hidden if any(line in view for view in views))
    assert not leaked, f"hidden test lines in cheat-leak's feedback: {leaked[:3]}"


def test_grading_never_reads_a_cache_the_submission_planted(graded, tmp_path):
    """The planted zeros are ignored while grading (NBGRADER_EXECUTION switches the cache off)..."""
    _check_expected(graded, "probe-poisoner")
    setup = find(graded.autograded("probe-poisoner"), "setup")
    assert "NBGRADER_EXECUTION = autograde" in "".join(o.get("text", "") for o in setup.outputs)
    planted = list((graded.course / ".tlh_cache").glob("*.pt"))
    if GRADER == "nbgrader":
        assert planted, "the submission did plant a cache file"
    else:  # sandboxed: the plant stayed in the submission's throwaway folder
        assert not planted, "a sandboxed submission wrote into the course's cache"
    # ... and the same notebook run outside grading really is fooled: the guard is what stops it.
    from nbclient import NotebookClient

    nb = graded.cases["probe-poisoner"].nb
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "TLH_NO_CACHE")}
    env["TLH_CACHE_DIR"] = str(tmp_path / "cache")
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    test = find(nb, "correct_pooled_features")
    assert not any(o.output_type == "error" for o in test.outputs), "outside grading the planted cache is read"


def test_export_csv_matches_the_gradebook(graded):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded.course / 'gradebook.db'}") as gb:
        for row in graded.csv:
            try:
                sub = gb.find_submission(row["assignment"], row["student_id"])
            except Exception:
                assert float(row["score"]) == 0.0
                continue
            assert math.isclose(float(row["score"]), sub.score), row
            assert math.isclose(float(row["max_score"]), sub.max_score), row


def test_config_keeps_nbgraders_own_steps_in_order():
    """Our grading policy adds steps; nbgrader's own must all still run, in their order."""
    from nbgrader.converters import Autograde, GenerateFeedback
    from traitlets.config import Config
    import runpy

    c = Config()
    runpy.run_path(str(CONFIG),
                   init_globals={"get_config": lambda: c})

    def names(classes):
        return [k.__name__ for k in classes]

    def keeps(ours, theirs, renamed):
        ours = [renamed.get(n, n) for n in names(ours)]
        it = iter(ours)
        return all(n in it for n in names(theirs))

    def default(cls, name):
        return cls.class_traits()[name].default()

    renamed = {"CourseExecute": "Execute", "LimitOutputSize": "LimitOutput"}
    assert keeps(c.Autograde.sanitize_preprocessors, default(Autograde, "sanitize_preprocessors"), renamed)
    assert keeps(c.Autograde.autograde_preprocessors, default(Autograde, "autograde_preprocessors"), renamed)
    assert keeps(c.GenerateFeedback.preprocessors, default(GenerateFeedback, "preprocessors"), renamed)
    assert c.OverwriteCells.add_missing_cells is True
    assert 30 <= c.Execute.timeout <= 600 and c.Execute.interrupt_on_timeout
    assert c.CourseDirectory.source_directory == "solutions" and c.CourseDirectory.release_directory == "course"


def test_nbgrader_sets_NBGRADER_EXECUTION_for_autograde_and_validate():
    """tlhelpers' cache guard relies on it: check nbgrader's own source says so."""
    import nbgrader

    root = Path(nbgrader.__file__).parent
    assert "setenv(NBGRADER_EXECUTION='autograde')" in (root / "converters" / "autograde.py").read_text()
    assert "NBGRADER_EXECUTION='validate'" in (root / "validator.py").read_text()


# --- what students and self-paced learners run (docs/students.md) ------------------------
def test_validate_reports_failures_on_the_release_and_success_on_a_solved_copy(graded):
    """`nbgrader validate <notebook>` as in docs/students.md, on the probe assignment."""
    course = graded.course
    probe = Assignment.load("probe", course / "solutions", course / "course")
    write(probe.solved(), course / "my-work" / "probe" / "probe.ipynb")
    released = nbgrader(course, "validate", "course/probe/probe.ipynb", check=False)
    solved = nbgrader(course, "validate", "my-work/probe/probe.ipynb", check=False)
    out = released.stdout + released.stderr
    assert "VALIDATION FAILED" in out and "NotImplementedError" in out, out[-3000:]
    assert "Success! Your notebook passes all the tests." in solved.stdout + solved.stderr, solved.stdout[-3000:]


# --- a JupyterHub class: nbgrader's exchange (docs/instructors.md) ------------------------
def test_exchange_round_trip_release_fetch_submit_collect_feedback(tmp_path, probe_source):
    """The hub loop with a local exchange folder: every command as the instructor guide has it."""
    import getpass

    course = make_course(tmp_path / "course", [], extra={"probe": probe_source})
    home = tmp_path / "student-home"
    home.mkdir()
    x = f"--Exchange.root={tmp_path / 'exchange'}"
    (tmp_path / "exchange").mkdir()
    nbgrader(course, "generate_assignment", "probe", "--force")
    nbgrader(course, "release_assignment", "probe", x)
    nbgrader(home, "fetch_assignment", "probe", "--course", "transfer-learning", x)
    probe = Assignment.load("probe", course / "solutions", course / "course")
    fetched = home / "probe" / "probe.ipynb"
    assert read(fetched).cells == probe.release.cells, "the student fetched exactly the release"
    write(probe.solved(), fetched)
    nbgrader(home, "submit", "probe", "--course", "transfer-learning", x)
    nbgrader(course, "collect", "probe", x)
    user = getpass.getuser()
    assert (course / "submitted" / user / "probe" / "timestamp.txt").is_file()
    nbgrader(course, "autograde", "probe")
    nbgrader(course, "generate_feedback", "probe")
    nbgrader(course, "release_feedback", "probe", x)
    nbgrader(home, "fetch_feedback", "probe", "--course", "transfer-learning", x)
    pages = list((home / "probe" / "feedback").glob("*/probe.html"))
    assert len(pages) == 1 and "Score: 3.0 / 3.0" in pages[0].read_text("utf-8")
