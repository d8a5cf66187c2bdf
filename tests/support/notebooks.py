"""Read and change notebooks the way the tests need: nbgrader cells, answers, secrets.

Cells are classified with nbgrader's own predicates (``nbgrader.utils.is_solution``,
``is_grade``), so the tests mean by "answer" and "test" what nbgrader means.
``Assignment`` is one assignment's source (solutions/) and release (course/) notebook,
with the student's-eye operations (fill answers in, tamper).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from nbgrader import utils

from .paths import COURSE, SOLUTIONS

MARKERS = re.compile(r"^\s*#+\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


# --- the repository ----------------------------------------------------------------------
def assignment_ids(root: Path = SOLUTIONS) -> list[str]:
    """Return the assignment folders under ``root`` (every visible folder is one)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")) and p.name != "__pycache__")


def notebooks(folder: Path) -> list[Path]:
    """Return the notebooks of an assignment folder (checkpoints excluded)."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def read(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write(nb: NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def new_cell(nb: NotebookNode, source: str) -> NotebookNode:
    """A code cell that fits ``nb``'s format (cell ids only from nbformat 4.5 on)."""
    cell = nbformat.v4.new_code_cell(source)
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        cell.pop("id", None)
    return cell


def meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return meta(cell).get("grade_id")


def is_answer(cell: NotebookNode) -> bool:
    """Return True for a cell the student writes (nbgrader's "solution" cell)."""
    return bool(utils.is_solution(cell))


def is_test(cell: NotebookNode) -> bool:
    """Return True for an autograded test cell: graded code that is not the student's own answer."""
    return cell.cell_type == "code" and bool(utils.is_grade(cell)) and not utils.is_solution(cell)


def find(nb: NotebookNode, gid: str) -> NotebookNode:
    for cell in nb.cells:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade_id {gid!r}")


def strip_markers(source: str) -> str:
    """Return what a student would have typed: the solution without nbgrader's markers."""
    return "\n".join(line for line in source.split("\n") if not MARKERS.match(line))


def regions(source: str):
    """(region, line) for every line of a cell: region is "SOLUTION", "HIDDEN" or None; marker lines are skipped."""
    region = None
    for line in source.split("\n"):
        if MARKERS.match(line):
            region = None if "END" in line else ("SOLUTION" if "SOLUTION" in line else "HIDDEN")
        else:
            yield region, line


def secret_lines(nb: NotebookNode) -> tuple[set[str], set[str]]:
    """(solution lines, hidden-test lines) of a source notebook that appear nowhere else in it.

    Lines are stripped. A line that also occurs outside the secret regions (``except
    ValueError:``) is public and left out, so finding one of these in a student-facing
    file means the secret leaked.
    """
    solution, hidden, public = set(), set(), set()
    for cell in nb.cells:
        whole = is_answer(cell) and "BEGIN SOLUTION" not in cell.source  # replaced whole on release
        for region, line in regions(cell.source):
            text = line.strip()
            if whole or region == "SOLUTION":
                solution.add(text)
            elif region == "HIDDEN":
                hidden.add(text)
            else:
                public.add(text)
    return solution - public - {""}, hidden - public - {""}


def solution_notebooks() -> dict[str, NotebookNode]:
    """assignment id -> its source notebook, for every assignment with exactly one notebook."""
    return {path.parent.name: read(path) for path in sorted(SOLUTIONS.glob("*/*.ipynb"))
            if len(notebooks(path.parent)) == 1}


# --- one assignment: its source (solutions/) and release (course/) notebook ------------------
@dataclass
class Assignment:
    id: str
    name: str                 # notebook file name without .ipynb
    source: NotebookNode      # solutions/<id>/<name>.ipynb: answers and hidden tests
    release: NotebookNode     # course/<id>/<name>.ipynb: what students get

    @classmethod
    def load(cls, assignment: str, solutions: Path = SOLUTIONS, course: Path = COURSE) -> "Assignment":
        paths = notebooks(solutions / assignment)
        if len(paths) != 1:
            raise ValueError(f"{assignment}: the grading harness expects one notebook, found {paths}")
        path = paths[0]
        rel = path.relative_to(solutions / assignment)
        return cls(assignment, path.stem, read(path), read(course / assignment / rel))

    @property
    def answers(self) -> list[str]:
        """grade_ids of the code answer cells, in notebook order."""
        return [grade_id(c) for c in self.source.cells if is_answer(c) and c.cell_type == "code"]

    @property
    def tests(self) -> dict[str, float]:
        """grade_id -> points of the autograded test cells, in notebook order."""
        return {grade_id(c): float(meta(c)["points"]) for c in self.source.cells if is_test(c)}

    @property
    def max_auto(self) -> float:
        return sum(self.tests.values())

    def answer(self, gid: str) -> str:
        return strip_markers(find(self.source, gid).source)

    def points_before_answer(self, k: int) -> float:
        """Points of the test cells that come before the k-th answer cell (0-based)."""
        if k >= len(self.answers):
            return self.max_auto
        stop = self.answers[k]
        total = 0.0
        for cell in self.source.cells:
            if grade_id(cell) == stop:
                break
            if is_test(cell):
                total += float(meta(cell)["points"])
        return total

    def tests_before_answer(self, k: int) -> list[str]:
        if k >= len(self.answers):
            return list(self.tests)
        stop, out = self.answers[k], []
        for cell in self.source.cells:
            if grade_id(cell) == stop:
                break
            if is_test(cell):
                out.append(grade_id(cell))
        return out

    def student_copy(self, answers: dict[str, str] | None = None) -> NotebookNode:
        """The released notebook with some answer cells replaced (grade_id -> source)."""
        nb = copy.deepcopy(self.release)
        for gid, src in (answers or {}).items():
            find(nb, gid).source = src
        return nb

    def solved(self, upto: int | None = None) -> NotebookNode:
        """The released notebook with the first ``upto`` answers (all by default) filled in."""
        gids = self.answers if upto is None else self.answers[:upto]
        return self.student_copy({gid: self.answer(gid) for gid in gids})
