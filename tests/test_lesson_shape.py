"""Notebooks a student finishes in a lab session, with exercises that grade the idea.

Issue 14's measurable shape of a lesson: at most 2,000 words of markdown (the capstone
3,000), visible test cells that teach in about 25 lines (thorough checks are hidden), at
least three autograded exercises in every notebook but 00, and every written question in
a locked cell of its own, so the answer cell holds only the answer. Issue 22 adds: a hint
points at the idea, so it quotes no call of the reference solution that the statement does
not already name.
"""
from __future__ import annotations

import re

import pytest

from support.notebooks import grade_id, is_answer, is_test, meta, regions, solution_notebooks

NOTEBOOKS = solution_notebooks()
WORD_LIMIT = {"11-capstone": 3000}   # the capstone asks for a written report; the rest 2,000
VISIBLE_TEST_LINES = 25
WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")
HINT = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`|<code>(.*?)</code>", re.DOTALL)


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


def solution_code(cell) -> str:
    """What the reference answer in an answer cell says (all of it when the cell has no markers)."""
    whole = "BEGIN SOLUTION" not in cell.source
    return "\n".join(line for region, line in regions(cell.source) if whole or region == "SOLUTION")


def hints_quoting_the_solution(nb) -> list[tuple[int, str, str]]:
    """(cell index, hint title, code) for every code span of a hint found verbatim in the reference
    answer to that exercise (the answer cells up to the next test cell) and not in the statement.

    Short spans and bare names are left alone: naming a concept is pointing; a call with its
    arguments, a method chain or an attribute path copied from the answer is the line itself.
    """
    found, cells = [], nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown" or "<details>" not in cell.source:
            continue
        answer = ""
        for later in cells[i + 1:]:
            if is_test(later):
                break
            if is_answer(later) and later.cell_type == "code":
                answer += solution_code(later)
        answer = re.sub(r"\s+", "", answer)
        statement = re.sub(r"\s+", "", HINT.sub(" ", cell.source))
        for title, body in HINT.findall(cell.source):
            for backticked, html in CODE_SPAN.findall(body):
                code = re.sub(r"\s+", "", (backticked or html).replace("&quot;", '"'))
                if len(code) >= 8 and re.search(r"[(.=\[]", code) and code in answer and code not in statement:
                    found.append((i, title, backticked or html))
    return found


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


def test_the_hint_check_tells_a_quoted_line_from_a_pointer():
    import nbformat

    answer = nbformat.v4.new_code_cell("def f(m):\n    ### BEGIN SOLUTION\n    return sum(p.numel() for p in m.parameters())\n"
                                       "    ### END SOLUTION", metadata={"nbgrader": {"solution": True, "grade_id": "f"}})
    test = nbformat.v4.new_code_cell("assert f(m) == 3", metadata={"nbgrader": {"grade": True, "solution": False,
                                                                                 "grade_id": "t", "points": 1}})

    def with_hint(statement, hint):
        task = nbformat.v4.new_markdown_cell(f"{statement}\n<details><summary>Hint</summary>{hint}</details>")
        return nbformat.v4.new_notebook(cells=[task, answer, test])

    assert [q[2] for q in hints_quoting_the_solution(with_hint("Count them.", "Use `p.numel()`."))] == ["p.numel()"]
    assert hints_quoting_the_solution(with_hint("Count them.", "A tensor knows its size.")) == []
    assert hints_quoting_the_solution(with_hint("`m.parameters()` lists them.", "Recall `m.parameters()`.")) == []
    assert hints_quoting_the_solution(with_hint("Count them.", "Not `model.state_dict()`: it holds buffers.")) == []


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_markdown_fits_a_lab_session(aid):
    limit = WORD_LIMIT.get(aid, 2000)
    assert markdown_words(NOTEBOOKS[aid]) <= limit, f"{aid}: {markdown_words(NOTEBOOKS[aid])} words > {limit}"


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_visible_test_cells_teach_in_a_few_lines(aid):
    long = {grade_id(c): visible_lines(c) for c in NOTEBOOKS[aid].cells
            if is_test(c) and visible_lines(c) > VISIBLE_TEST_LINES}
    assert not long, f"{aid}: visible test cells over {VISIBLE_TEST_LINES} lines (move checks into hidden tests): {long}"


@pytest.mark.parametrize("aid", sorted(NOTEBOOKS))
def test_hints_point_at_the_idea_not_the_line(aid):
    quoted = hints_quoting_the_solution(NOTEBOOKS[aid])
    assert not quoted, (f"{aid}: hints quote the reference answer (cell, hint, code): {quoted}. Ask the question "
                        "that leads to the call instead of giving it")


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
