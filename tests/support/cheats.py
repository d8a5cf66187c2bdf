"""Submissions for the simulated class: honest (partly right, noisy) and adversarial (cheats, tampering).

The cheating code itself lives in tests/cheats/*.py, real Python files that linters and
editors read; each is pasted into a submission's answer cells as text (from the marker
line on: what is above it only names, for linters, what an earlier part of the same
cell defines).
"""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .notebooks import Assignment, find, is_answer, is_test, new_cell

CHEATS = Path(__file__).resolve().parents[1] / "cheats"
MARK = "# --- the submission's text starts here"


def cheat(name: str) -> str:
    """The submission text of tests/cheats/<name>.py (from its marker line on)."""
    text = (CHEATS / f"{name}.py").read_text("utf-8")
    return "\n" + text[text.index("\n", text.index(MARK)) + 1:]


LIAR = cheat("liar")

_WRAP_OUTERMOST = cheat("wrap_outermost")  # only the outermost call of an answer returns a wrong value

DISGUISE = cheat("disguise") + _WRAP_OUTERMOST

PLAIN_WRONG = cheat("plain_wrong") + _WRAP_OUTERMOST

PATCH_CHECKS = cheat("patch_checks")

LEAK, LEAK_LATER = cheat("leak"), cheat("leak_later")


def defined_names(source: str) -> tuple[list[str], list[str], list[str]]:
    """Return (functions, classes, variables) defined at the top level of ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], [], []
    funcs, classes, names = [], [], []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(node.name)
        elif isinstance(node, ast.ClassDef):
            classes.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and not sub.id.startswith("_"):
                        names.append(sub.id)
    return funcs, classes, list(dict.fromkeys(names))


def helpers_called_by_tests(a: Assignment) -> list[str]:
    """Functions the test cells call that an earlier locked (non-test) cell defines."""
    locked_defs = set()
    for cell in a.source.cells:
        if cell.cell_type == "code" and not is_test(cell) and not is_answer(cell):
            locked_defs.update(defined_names(cell.source)[0])
    called = set()
    for cell in a.source.cells:
        if is_test(cell):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            own = set(defined_names(cell.source)[0])
            called |= {n.func.id for n in ast.walk(tree)
                       if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)} - own
    return sorted(called & locked_defs)


def liar_submission(a: Assignment) -> NotebookNode:
    """Every answer replaced by an object that claims to equal anything."""
    answers = {}
    for i, gid in enumerate(a.answers):
        funcs, classes, names = defined_names(a.answer(gid))
        lines = [LIAR] if i == 0 else []
        lines += [f"def {f}(*args, **kwargs):\n    return _Liar()" for f in funcs]
        lines += [f"{c} = _Liar()" for c in classes] + [f"{n} = _Liar()" for n in names]
        answers[gid] = "\n".join(lines) or "pass"
    return a.student_copy(answers)


def _wrapped_answers(a: Assignment, prelude: str) -> dict[str, str]:
    answers = {}
    for i, gid in enumerate(a.answers):
        src = a.answer(gid)
        funcs, classes, names = defined_names(src)
        lines = [LIAR, prelude] if i == 0 else []
        lines.append(src)
        lines += [f"{f} = _disguised({f})" for f in funcs]
        lines += [f"{c} = _Liar()" for c in classes]
        lines += [f"{n} = _wrong({n})" for n in names]
        answers[gid] = "\n".join(lines)
    return answers


def disguised_submission(a: Assignment) -> NotebookNode:
    """Every answer returns a WRONG value dressed as the right type that claims equality."""
    return a.student_copy(_wrapped_answers(a, DISGUISE))


def patched_checks_submission(a: Assignment) -> NotebookNode:
    """Wrong plain values, comparison functions patched, the tests' helpers redefined."""
    nb = a.student_copy(_wrapped_answers(a, PLAIN_WRONG))
    patch = PATCH_CHECKS + "".join(f"{h} = _yes\n" for h in helpers_called_by_tests(a))
    cells = []
    for cell in nb.cells:
        if is_test(cell):
            cells.append(new_cell(nb, patch))  # a cell the student added just before
        cells.append(cell)
    nb.cells = cells
    return nb


def transformer_submission(a: Assignment) -> NotebookNode:
    """Blank answers, plus IPython input transformers that turn every later cell into ``pass``."""
    nb = a.student_copy()
    hack = ("get_ipython().input_transformers_post.append(\n"
            "    lambda lines: ['pass\\n'] if any('assert' in l for l in lines) else lines)")
    nb.cells.insert(_index(nb, a.answers[0]) + 1, new_cell(nb, hack))
    return nb


def leaky_submission(a: Assignment) -> NotebookNode:
    """Correct answers that capture every cell's source as it runs (hidden tests too) and leak it.

    The first answer registers an IPython ``pre_run_cell`` hook that prints each cell's
    source plainly, in base64, rot13 and reversed, and shows a display to rewrite later;
    the last answer prints the input history, rewrites that display with everything
    captured, and makes its own functions raise it (base64) as an error message.
    """
    answers = {gid: a.answer(gid) for gid in a.answers}
    first, last = a.answers[0], a.answers[-1]
    answers[first] = LEAK + "\n" + answers[first]
    funcs = defined_names(answers[last])[0]
    answers[last] = "\n".join([answers[last], LEAK_LATER, *(f"{f} = _raising({f})" for f in funcs)])
    return a.student_copy(answers)


TAMPERS = ("forge", "delete", "skip_tag", "duplicate")


def tampered_submission(a: Assignment, plan: dict[str, str]) -> NotebookNode:
    """Blank answers; each test cell in ``plan`` (grade_id -> one of TAMPERS) is tampered with.

    forge: source replaced by ``pass``, points raised to 100, checksum recomputed to match.
    delete: the test cell removed. skip_tag: tagged ``skip-execution`` (nbclient skips it).
    duplicate: a fake copy (``pass``, same grade_id, same metadata) added after the real one.
    """
    from nbgrader.utils import compute_checksum

    nb = a.student_copy()
    for gid, how in plan.items():
        cell = find(nb, gid)
        if how == "forge":
            cell.source = "pass"
            cell.metadata.nbgrader["points"] = 100
            cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
        elif how == "delete":
            nb.cells.remove(cell)
        elif how == "skip_tag":
            cell.metadata["tags"] = ["skip-execution"]
        elif how == "duplicate":
            fake = copy.deepcopy(cell)
            fake.source = "pass"
            if "id" in fake:
                fake.id = nbformat.v4.new_code_cell().id
            fake.metadata.nbgrader["checksum"] = compute_checksum(fake)
            nb.cells.insert(nb.cells.index(cell) + 1, fake)
        else:
            raise ValueError(f"unknown tamper {how!r}; choose from {TAMPERS}")
    return nb


def tamper_plans(a: Assignment) -> list[dict[str, str]]:
    """Spread every kind of tampering over the test cells, in as few students as possible."""
    tests = list(a.tests)
    plans = []
    kinds = list(TAMPERS)
    while kinds:
        plan = {}
        for gid in tests:
            if not kinds:
                break
            plan[gid] = kinds.pop(0)
        plans.append(plan)
    return plans


def _index(nb: NotebookNode, gid: str) -> int:
    return nb.cells.index(find(nb, gid))


def prefixed_submission(a: Assignment, prefix: str, *, at: int = -1) -> NotebookNode:
    """All answers correct, but answer cell ``at`` starts with ``prefix`` (a loop, a crash)."""
    answers = {gid: a.answer(gid) for gid in a.answers}
    gid = a.answers[at]
    answers[gid] = prefix + "\n" + answers[gid]
    return a.student_copy(answers)


NON_ASCII = "Größe · naïve café · 数字 · Ελληνικά · 🙂"

NOISE = cheat("noise")


def noisy_submission(a: Assignment, upto: int) -> NotebookNode:
    """The first ``upto`` answers correct but chatty on stderr, with non-ASCII text and 50 MB printed."""
    answers = {}
    for i, gid in enumerate(a.answers[:upto]):
        src = a.answer(gid)
        funcs = defined_names(src)[0]
        lines = [f"# {NON_ASCII}"]
        if i == 0:
            lines += [NOISE, "print('x' * 50_000_000)  # 50 MB of output",
                      f"print({NON_ASCII!r})"]
        lines.append(src)
        lines += [f"{f} = _noisy({f})" for f in funcs]
        answers[gid] = "\n".join(lines)
    return a.student_copy(answers)

