"""Notebooks a student finishes in a lab session, with exercises that grade the idea.

Issue 14's measurable shape of a lesson: at most 2,000 words of markdown (the capstone
3,000), visible test cells that teach in about 25 lines (thorough checks are hidden), at
least three autograded exercises in every notebook but 00, and every written question in
a locked cell of its own, so the answer cell holds only the answer.
"""
from __future__ import annotations

import re

import pytest

from support.notebooks import grade_id, is_answer, is_test, meta, regions, solution_notebooks

NOTEBOOKS = solution_notebooks()
WORD_LIMIT = {"11-capstone": 3000}   # the capstone asks for a written report; the rest 2,000
VISIBLE_TEST_LINES = 25
WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")


def markdown_words(nb) -> int:
    return sum(len(WORD.findall(c.source)) for c in nb.cells if c.cell_type == "markdown")


def visible_lines(cell) -> int:
    """Non-blank lines of a test cell that a student sees (hidden tests are cut on release)."""
    return sum(1 for region, line in regions(cell.source) if region != "HIDDEN" and line.strip())


def exercises(nb) -> list[str]:
    """grade_ids of the code answer cells followed by at least one autograded test cell."""
    out, current = [], None
    for cell in nb.cells:
        if is_answer(cell) and cell.cell_type == "code":
            current = grade_id(cell)
        elif is_test(cell) and current is not None:
            out.append(current)
            current = None
    return out


def test_the_measures_read_a_notebook():
    """The measures themselves, on a tiny notebook: words, visible lines, exercises."""
    import nbformat

    def cell(kind, source, **nbgrader):
        c = (nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell)(source)
        if nbgrader:
            c.metadata["nbgrader"] = nbgrader
        return c

    test = cell("code", "assert f(1) == 2\n\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n### END HIDDEN TESTS",
                grade=True, solution=False, grade_id="t1", points=1)
    nb = nbformat.v4.new_notebook(cells=[
        cell("md", "Two words"), cell("code", "def f(x):\n    return x + 1", solution=True, grade_id="f"), test,
        cell("code", "print('not an exercise')")])
    assert markdown_words(nb) == 2
    assert visible_lines(test) == 1
    assert exercises(nb) == ["f"]


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_markdown_fits_a_lab_session(aid):
    limit = WORD_LIMIT.get(aid, 2000)
    assert markdown_words(NOTEBOOKS[aid]) <= limit, f"{aid}: {markdown_words(NOTEBOOKS[aid])} words > {limit}"


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_visible_test_cells_teach_in_a_few_lines(aid):
    long = {grade_id(c): visible_lines(c) for c in NOTEBOOKS[aid].cells
            if is_test(c) and visible_lines(c) > VISIBLE_TEST_LINES}
    assert not long, f"{aid}: visible test cells over {VISIBLE_TEST_LINES} lines (move checks into hidden tests): {long}"


@pytest.mark.parametrize("aid", [a for a in sorted(NOTEBOOKS) if not a.startswith("00-")])
def test_at_least_three_autograded_exercises(aid):
    found = exercises(NOTEBOOKS[aid])
    assert len(found) >= 3, f"{aid}: autograded exercises {found}"


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_written_questions_sit_in_locked_cells(aid):
    """A manually graded answer follows a locked markdown question (and, between them, only locked
    cells such as one that renders the numbers to cite): a student cannot delete the question."""
    cells = NOTEBOOKS[aid].cells
    for i, cell in enumerate(cells):
        m = meta(cell)
        if cell.cell_type == "markdown" and m.get("solution") and m.get("grade"):
            j = i - 1
            while j >= 0 and cells[j].cell_type != "markdown":
                j -= 1
            between = cells[max(j, 0):i]
            assert j >= 0 and all(meta(c).get("locked") and not is_answer(c) for c in between), \
                f"{aid}: the question before {grade_id(cell)} is not in a locked markdown cell"
