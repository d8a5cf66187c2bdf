"""Feedback that cannot carry hidden tests out, however a submission tries (nbgrader_config.py uses it).

nbgrader shows hidden tests in feedback (jupyter/nbgrader#917). Cutting their source is
not enough: the student's code runs in the same kernel as the hidden tests, so it can
capture them (an IPython ``pre_run_cell`` hook sees every cell's source; ``In``/``_ih``
hold the history) and print them, encoded any way it likes, in any later output, raise
them as an error message, or write them into an earlier output through a display update.
No text filter can recognise every encoding, so feedback is built from what the student
could not have written after the first hidden test reached the kernel:

* every cell's source, with the hidden-test regions of the locked cells cut (the release's
  cells and the student's own answers, as submitted);
* each test cell's score (nbgrader's GetGrades);
* for a failing test cell, the error's type when it is one of Python's own, and its
  message when it is one the instructor wrote in that cell (an assert's or a raise's
  message, with the values of an f-string shown as ``…``);
* the text output and errors of the cells that ran before the first cell with hidden tests.

Dropped: every other output of every cell from the first cell with hidden tests on, and
rich outputs (figures, HTML) everywhere (a later cell can rewrite an earlier display by its
display id). This holds for grading in the sandbox, where the student's kernel cannot read
the hidden tests before they are sent to it.
"""
from __future__ import annotations

import ast
import builtins
import copy
import re

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Bool

from tlhelpers.checks import REFUSAL

ELLIPSIS = "…"
GRADER_ERRORS = {"DeadKernelError", "CellTimeoutError"}  # added by the grading policy (grading.CourseExecute)
GRADER_MESSAGES = ("the kernel died while running this cell (os._exit, a crash, or out of memory)",
                   "not run: the kernel died in an earlier cell")
NOT_SHOWN = "[output not shown in feedback: it could quote the hidden tests]"
RICH_NOT_SHOWN = "[a figure or other rich output: not shown in feedback]"


def _python_error(name: str) -> bool:
    return name in GRADER_ERRORS or isinstance(getattr(builtins, name, None), type) and \
        issubclass(getattr(builtins, name), BaseException)


def _template(node: ast.expr) -> str | None:
    """Return a message as the instructor wrote it, with f-string values as ``…``; None if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else ELLIPSIS for part in node.values)
    return None


def instructor_messages(source: str) -> list[str]:
    """Return the message templates written in a test cell: of its asserts and its ``raise X("...")``."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            found.append(_template(node.msg))
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            found.append(_template(node.exc.args[0]))
    return [t for t in found if t]


def shown_message(evalue: str, templates: list[str]) -> str | None:
    """Return the template ``evalue`` was made from (values as ``…``), or None: then it is not shown."""
    for template in [*templates, *GRADER_MESSAGES, REFUSAL.format(lesson=ELLIPSIS, helper=ELLIPSIS)]:
        pattern = "(?s:.*)".join(re.escape(part) for part in template.split(ELLIPSIS))
        if re.fullmatch(pattern, evalue.strip()):
            return template
    return None


def _error(ename: str, evalue: str | None, why: str) -> NotebookNode:
    name = ename if _python_error(ename) else "Error"
    line = f"\x1b[0;31m{name}\x1b[0m" + (f": {evalue}" if evalue else "")
    return NotebookNode(output_type="error", ename=name, evalue=evalue or "", traceback=[line, why])


def _text_only(outputs: list) -> list:
    """Keep stream text and errors as they were (no later message can change them); drop rich outputs."""
    kept, rich = [], 0
    for output in outputs:
        if output.output_type == "stream":
            kept.append(NotebookNode(output_type="stream", name=output.name, text=output.text))
        elif output.output_type == "error":
            kept.append(NotebookNode(output_type="error", ename=output.ename, evalue=output.evalue,
                                     traceback=list(output.traceback)))
        else:
            rich += 1
    if rich:
        kept.append(NotebookNode(output_type="stream", name="stdout", text=f"{RICH_NOT_SHOWN}\n"))
    return kept


def _after_hidden(outputs: list, templates: list[str] | None) -> list:
    """Outputs of a cell that ran after hidden tests: an error's type and an instructor's message, at most."""
    errors = [o for o in outputs if o.output_type == "error"]
    if errors and templates is not None:  # a test cell
        message = shown_message(errors[-1].evalue, templates)
        return [_error(errors[-1].ename, message, "(traceback not shown: hidden tests ran before this cell)")]
    if errors:
        return [_error(errors[-1].ename, None, NOT_SHOWN)]
    return [NotebookNode(output_type="stream", name="stdout", text=f"{NOT_SHOWN}\n")] if outputs else []


class HideHiddenTests(ClearHiddenTests):
    """Build each feedback notebook from what cannot quote a hidden test (see the module's docstring).

    The regions are cut by nbgrader's own ClearHiddenTests (its delimiters and their config
    apply here too), in locked cells only: a student's own cell is the student's text.
    """

    enforce_metadata = Bool(False, help="grading already checked the cells' metadata").tag(config=True)

    def _hidden(self, cell: NotebookNode) -> bool:
        return cell.cell_type == "code" and utils.is_locked(cell) and \
            self._remove_hidden_test_region(copy.deepcopy(cell))

    def preprocess(self, nb, resources):
        first = next((i for i, cell in enumerate(nb.cells) if self._hidden(cell)), len(nb.cells))
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            test = utils.is_grade(cell) and not utils.is_solution(cell)
            templates = instructor_messages(cell.source) if test else None
            if utils.is_locked(cell):
                self._remove_hidden_test_region(cell)
            outputs = cell.get("outputs", [])
            cell.outputs = _text_only(outputs) if i < first else _after_hidden(outputs, templates)
        nb.metadata.pop("celltoolbar", None)
        return nb, resources
