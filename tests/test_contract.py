"""One lesson, one helper: a package function that a lesson builds IS the student's function.

A helper's docstring says which notebook builds it ("Lesson: 03-feature-extraction builds
this (exercise ``extract_features``...)"). Checked both ways against solutions/:

- the notebook it names defines, in an answer cell, a function of the same name whose
  parameters the package function has, of the same kind and with the same defaults (the
  package may only add keyword-only parameters with defaults: conveniences such as
  ``progress`` or ``cache``);
- every answer-cell function named like a public helper is one of these lessons;
- no notebook calls ``tlh.<name>`` before the notebook that builds it;
- no notebook re-defines a public helper outside the exercise that builds it (a local copy
  drifts from the package).
"""
from __future__ import annotations

import ast
import inspect
import re

import pytest
from support.lessons import LESSON, LESSONS
from support.notebooks import is_answer, is_test, solution_notebooks

import tlhelpers as tlh

FORBIDDEN = re.compile(r"forbid\([^)]*\)")
NOTEBOOKS = solution_notebooks()


def _code(cell) -> str:
    """A code cell's source without IPython magics and shell lines, which ast cannot parse."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())


def _functions(nb, *, answers: bool) -> dict[str, ast.FunctionDef]:
    """Top-level functions defined in the notebook's answer cells (or in its other code cells)."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or is_answer(cell) != answers:
            continue
        for node in ast.parse(_code(cell)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out[node.name] = node
    return out


def _lesson_parameters(node: ast.FunctionDef) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter, kinds named as inspect names them."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults]
    out = [(a.arg, "POSITIONAL_OR_KEYWORD", d) for a, d in zip(positional, defaults)]
    out += [(a.arg, "KEYWORD_ONLY", inspect.Parameter.empty if d is None else ast.literal_eval(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return out


def test_each_lesson_docstring_names_its_own_exercise():
    for name in tlh.__all__:
        found = LESSON.search(inspect.getdoc(getattr(tlh, name)) or "")
        assert found is None or found.group(2) == name, f"tlh.{name}'s docstring names exercise {found.group(2)!r}"


def test_the_lessons_are_found():
    """The five lessons named in issue 13 are declared (a docstring typo would empty this test)."""
    assert {"mmd", "count_parameters", "replace_head", "extract_features", "freeze", "param_groups"} <= set(LESSONS)


@pytest.mark.parametrize("name", sorted(LESSONS))
def test_the_lesson_builds_the_package_function(name):
    notebook = LESSONS[name]
    assert notebook in NOTEBOOKS, f"tlh.{name} names {notebook}, which is not in solutions/"
    built = _functions(NOTEBOOKS[notebook], answers=True)
    assert name in built, f"{notebook} has no exercise defining {name}() in an answer cell"
    package = inspect.signature(getattr(tlh, name)).parameters
    lesson = _lesson_parameters(built[name])
    positional = [p for p in package.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    lesson_positional = [n for n, kind, _ in lesson if kind == "POSITIONAL_OR_KEYWORD"]
    assert lesson_positional == [p.name for p in positional][:len(lesson_positional)], \
        f"{name}: positional parameters {lesson_positional} vs the package's {[p.name for p in positional]}"
    for pname, kind, default in lesson:
        assert pname in package, f"{notebook}'s {name}() has {pname!r}; tlh.{name} has {list(package)}"
        assert package[pname].kind.name == kind, f"{name}({pname}): {kind} in the lesson, {package[pname].kind.name}"
        assert package[pname].default == default, \
            f"{name}({pname}): default {default!r} in the lesson, {package[pname].default!r} in the package"
    for extra in set(package) - {n for n, _, _ in lesson}:
        p = package[extra]
        assert p.kind == p.KEYWORD_ONLY and p.default is not p.empty, \
            f"tlh.{name} adds {extra!r}: only keyword-only parameters with defaults may be added"


def test_every_exercise_named_like_a_helper_is_its_lesson():
    for notebook, nb in NOTEBOOKS.items():
        for name in _functions(nb, answers=True):
            if name in tlh.__all__:
                assert LESSONS.get(name) == notebook, \
                    f"{notebook} builds {name}(), but tlh.{name}'s docstring names {LESSONS.get(name)}"


def test_no_helper_is_used_before_the_notebook_that_builds_it():
    order = sorted(NOTEBOOKS)
    for name, notebook in LESSONS.items():
        for earlier in order[:order.index(notebook)]:
            code = "\n".join(c.source for c in NOTEBOOKS[earlier].cells if c.cell_type == "code")
            code = FORBIDDEN.sub("", code)  # naming a helper in order to forbid it is not using it
            assert not re.search(rf"\btlh\.{name}\b", code), f"{earlier} uses tlh.{name}, built later in {notebook}"


def test_no_notebook_keeps_a_local_copy_of_a_helper():
    for notebook, nb in NOTEBOOKS.items():
        copies = sorted(set(_functions(nb, answers=False)) & set(tlh.__all__))
        assert not copies, f"{notebook} re-defines {copies}: use tlh's (or build it as the exercise)"


RULE_NAMES = re.compile(r"^_?(versus|noise|within_noise|compare|rule|decide|verdicts?|probe\w*)$")


def _calls(node: ast.FunctionDef) -> set[str]:
    """Names of what the function calls: ``tlh.decide(...)`` gives "tlh.decide", ``np.std(...)`` "std"."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "tlh":
                out.add(f"tlh.{f.attr}")
            out.add(getattr(f, "attr", getattr(f, "id", None)))
    return out


def _spread_names(node: ast.FunctionDef) -> set[str]:
    """Names the function assigns from an expression that takes a standard deviation."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Assign) and _calls_std(n.value):
            out |= {t.id for target in n.targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return out


def _calls_std(tree: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None)) in {"std", "stdev"}
               for n in ast.walk(tree))


def _is_own_rule_or_probe(node: ast.FunctionDef) -> bool:
    """Named like a rule or probe, or comparing against a spread it computes, without calling the package's."""
    if _calls(node) & {"tlh.decide", "tlh.linear_probe"}:
        return False            # a wrapper that words or feeds the package's rule is not a copy of it
    spreads = _spread_names(node)
    against_spread = any(
        isinstance(n, ast.Compare) and any(isinstance(op, (ast.Gt, ast.Lt, ast.GtE, ast.LtE)) for op in n.ops)
        and any(_calls_std(side) or any(isinstance(m, ast.Name) and m.id in spreads for m in ast.walk(side))
                for side in [n.left, *n.comparators])
        for n in ast.walk(node))
    return bool(RULE_NAMES.match(node.name)) or against_spread


def _cells_outside_the_rule_lesson(notebook, nb):
    """Code cells, except the decide lesson's own answer and test cells (its tests need a reference)."""
    lesson = LESSONS.get("decide")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if notebook == lesson and (is_answer(cell) or is_test(cell)) and "decide" in cell.source:
            continue
        yield cell


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_no_notebook_keeps_its_own_decision_rule_or_probe(notebook):
    """One rule (tlh.decide) and one probe (tlh.linear_probe): a notebook's own variant drifts from them."""
    for cell in _cells_outside_the_rule_lesson(notebook, NOTEBOOKS[notebook]):
        for node in ast.walk(ast.parse(_code(cell))):
            if isinstance(node, ast.FunctionDef):
                assert not _is_own_rule_or_probe(node), (
                    f"{notebook} defines {node.name}(), its own rule or probe: decide with tlh.decide, "
                    "probe with tlh.linear_probe")


def test_the_rule_check_tells_a_copy_from_a_wrapper():
    """The check above, on small functions: a local rule fails it, a wrapper of tlh.decide passes."""
    def first(source):
        return ast.parse(source).body[0]

    assert _is_own_rule_or_probe(first("def versus(a, b):\n    return a > b"))
    assert _is_own_rule_or_probe(first("def lead(a, b):\n    return (a - b).mean() > b.std(ddof=1)"))
    assert not _is_own_rule_or_probe(first("def verdict(a, b):\n    return tlh.decide(a, b).verdict"))
    assert _is_own_rule_or_probe(first("def lead(a, b):\n    sd = b.std(ddof=1)\n    return a - b >= sd"))
    assert not _is_own_rule_or_probe(first("def spread(a):\n    return a.std(ddof=1)"))
    assert not _is_own_rule_or_probe(first("def report(a):\n    print(a.std())\n    return (a > 0.5).sum()"))
