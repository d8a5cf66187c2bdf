"""Own work earns the points: an answer that only delegates to tlhelpers scores 0 on its exercise.

For every graded solution function that tlhelpers also provides (the lessons of
tests/test_contract.py give the student's function the package's name), one submission
is the solution with that single answer replaced by a call to the package. Each case is its own small assignment: the solution notebook cut
after the last test cell of that exercise (nothing later can change those cells' grades,
and the cut keeps the cost to the start of each notebook, not all of it). The whole set
is one class, graded in parallel by ``python -m tlhelpers.instructor.grade`` (sandboxed
where bubblewrap can start). Each
delegating answer must score 0 on the test cells of its exercise, and those cells must
fail because of ``tlhelpers.checks.forbid`` (its message is in the output),
not by accident (a TypeError from a wrong adapter would prove nothing).
"""
from __future__ import annotations

import ast
import copy
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tlhelpers as tlh

from support.cheats import defined_names
from support.course import command_env, grades, make_course, nbgrader, submit
from support.lessons import LESSONS
from support.notebooks import Assignment, assignment_ids, find, grade_id, is_test, notebooks, read, write
from support.paths import COURSE, SOLUTIONS

pytestmark = pytest.mark.slow

FORBID_MESSAGE = "earns no points"   # the end of checks.forbid's refusal message

PREFIX = "import tlhelpers as tlh\n"


@dataclass
class Delegation:
    assignment: str
    answer: str          # grade_id of the answer cell
    function: str
    source: str          # the delegating answer
    tests: list[str]     # grade_ids of the exercise's test cells

    @property
    def student(self) -> str:
        return f"delegate-{self.function}"

    @property
    def case_id(self) -> str:
        """The assignment id of this case's cut-down copy of its notebook."""
        return f"{self.assignment}--{self.function}"

    def cut_source(self, folder: Path) -> Path:
        """A copy of the assignment's source folder, its notebook cut after the exercise's last test cell."""
        shutil.copytree(SOLUTIONS / self.assignment, folder)
        a = Assignment.load(self.assignment)
        nb = copy.deepcopy(a.source)
        last = max(i for i, c in enumerate(nb.cells) if grade_id(c) in self.tests)
        nb.cells = nb.cells[:last + 1]
        write(nb, folder / f"{a.name}.ipynb")
        return folder


def _delegating(function: str, answer: str) -> str:
    """An answer with the exercise's own signature whose body only calls ``tlh.<function>``.

    The same signature matters: a test that first checks the signature (as 01's does) must
    then fail because of forbid, not because the parameters look wrong.
    """
    node = next(n for n in ast.parse(answer).body if isinstance(n, ast.FunctionDef) and n.name == function)
    args = node.args
    passed = [a.arg for a in args.posonlyargs + args.args] + [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    passed += [f"*{args.vararg.arg}"] if args.vararg else []
    passed += [f"**{args.kwarg.arg}"] if args.kwarg else []
    return f"def {function}({ast.unparse(args)}):\n    return tlh.{function}({', '.join(passed)})"


def delegations() -> list[Delegation]:
    """Every graded solution function that the package also has, with the test cells of its exercise."""
    found = []
    for aid in assignment_ids():
        if len(notebooks(SOLUTIONS / aid)) != 1 or len(notebooks(COURSE / aid)) != 1:
            continue
        a = Assignment.load(aid)
        cells = a.source.cells
        for k, gid in enumerate(a.answers):
            for function in defined_names(a.answer(gid))[0]:
                if not callable(getattr(tlh, function, None)):
                    continue
                source = _delegating(function, a.answer(gid))
                start = next(i for i, c in enumerate(cells) if grade_id(c) == gid)
                tests = []
                for cell in cells[start + 1:]:
                    if grade_id(cell) in a.answers:
                        break
                    if is_test(cell):
                        tests.append(grade_id(cell))
                if tests:
                    found.append(Delegation(aid, gid, function, PREFIX + source, tests))
    return found


CASES = delegations()


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """All delegating submissions in one class, graded in parallel by the grade command."""
    from tlhelpers.instructor.bwrap import sandbox_problem

    root = tmp_path_factory.mktemp("own-work")
    course = make_course(root / "course", [], extra={d.case_id: d.cut_source(root / "cut" / d.case_id)
                                                     for d in CASES})
    nbgrader(course, "generate_assignment", "*", "--force")
    for d in CASES:
        a = Assignment.load(d.case_id, course / "solutions", course / "course")
        answers = {gid: a.answer(gid) for gid in a.answers}
        answers[d.answer] = d.source
        submit(course, d.student, d.case_id, a.name, a.student_copy(answers))
    env = command_env()
    extra = ["--unsandboxed"] if sandbox_problem() else []
    proc = subprocess.run([sys.executable, "-m", "tlhelpers.instructor.grade", "--all", "--no-progress",
                           "--cell-timeout=90", *extra], cwd=course, env=env, capture_output=True, text=True,
                          timeout=3600)
    return course, proc


@pytest.mark.parametrize("case", CASES, ids=lambda d: f"{d.assignment}:{d.function}")
def test_an_answer_that_only_delegates_to_the_package_scores_zero(graded_class, case):
    course, proc = graded_class
    a = Assignment.load(case.case_id, course / "solutions", course / "course")
    got = grades(course, case.case_id, case.student, a.name)
    earned = {gid: got[gid].score for gid in case.tests if got[gid].score}
    assert not earned, f"{case.student} earned points on {case.assignment} by calling the package: {earned}"
    nb = read(course / "autograded" / case.student / case.case_id / f"{a.name}.ipynb")
    messages = " ".join(str(o.get("evalue", "")) for gid in case.tests for o in find(nb, gid).get("outputs", []))
    assert FORBID_MESSAGE in messages, (f"{case.tests} failed, but not because of forbid (the delegation itself "
                                        f"may be wrong): {messages[:500]}")


def test_every_lesson_of_the_contract_has_a_delegation_case():
    """Each helper a lesson builds (tests/test_contract.py) is checked here: a rename cannot make it vacuous."""
    assert LESSONS, "no lessons found"
    missing = sorted(set(LESSONS) - {d.function for d in CASES})
    assert not missing, f"no graded exercise found that builds {missing}"
