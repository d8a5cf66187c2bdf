"""course/ is exactly what ``nbgrader generate_assignment`` makes of solutions/, and leaks nothing.

Every assignment folder is covered automatically (the tests are parametrised over the
folders found in solutions/ and course/). The fix for a failure here is nearly always:

    nbgrader generate_assignment <id> --force        (from the repository root)
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from support.course import nbgrader
from support.notebooks import assignment_ids, grade_id, meta, notebooks, read, secret_lines
from support.paths import CONFIG, COURSE, SOLUTIONS

IDS = sorted(set(assignment_ids(SOLUTIONS)) | set(assignment_ids(COURSE)))
ID_RULE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MARKER_TEXT = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

pytestmark = pytest.mark.skipif(not IDS, reason="no assignments in solutions/ or course/ yet")


def files(folder: Path) -> set[str]:
    """Relative paths of the files nbgrader would release from ``folder``."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts) and p.suffix != ".pyc"
            and p.name != ".DS_Store"}


@pytest.fixture(scope="session")
def fresh(tmp_path_factory) -> Path:
    """A fresh ``nbgrader generate_assignment`` of every assignment in solutions/ (one call)."""
    root = tmp_path_factory.mktemp("release")
    shutil.copy(CONFIG, root / "nbgrader_config.py")
    shutil.copytree(SOLUTIONS, root / "solutions", ignore=IGNORED)
    if assignment_ids(root / "solutions"):
        nbgrader(root, "generate_assignment", "*")
    return root / "course"


@pytest.mark.parametrize("aid", IDS)
def test_every_assignment_has_a_release_twin_and_a_valid_id(aid):
    assert (SOLUTIONS / aid).is_dir(), f"course/{aid} has no source in solutions/{aid}: delete it or add the source"
    assert (COURSE / aid).is_dir(), f"solutions/{aid} was never released: nbgrader generate_assignment {aid} --force"
    assert ID_RULE.match(aid), f"assignment ids are lowercase letters, digits and dashes, got {aid!r}"
    assert notebooks(SOLUTIONS / aid), f"solutions/{aid} holds no notebook"


def _diff_notebooks(ours, theirs, where: str) -> list[str]:
    """Every difference between two notebooks, cell by cell; nothing is skipped."""
    problems = []
    for key in ("nbformat", "nbformat_minor"):
        if ours.get(key) != theirs.get(key):
            problems.append(f"{where}: {key} {ours.get(key)} != fresh {theirs.get(key)}")
    if ours.metadata != theirs.metadata:
        problems.append(f"{where}: notebook metadata differs: {dict(ours.metadata)} != fresh {dict(theirs.metadata)}")
    if len(ours.cells) != len(theirs.cells):
        problems.append(f"{where}: {len(ours.cells)} cells != fresh {len(theirs.cells)}")
    for i, (a, b) in enumerate(zip(ours.cells, theirs.cells)):
        name = f"{where} cell {i} ({grade_id(b) or b.cell_type})"
        for key in sorted(set(a) | set(b)):
            if key == "metadata":
                for mkey in sorted(set(a.metadata) | set(b.metadata)):
                    if a.metadata.get(mkey) != b.metadata.get(mkey):
                        problems.append(f"{name}: metadata.{mkey} {json.dumps(a.metadata.get(mkey))} "
                                        f"!= fresh {json.dumps(b.metadata.get(mkey))}")
            elif a.get(key) != b.get(key):
                problems.append(f"{name}: {key} differs:\n--- course/\n{a.get(key)}\n--- fresh\n{b.get(key)}")
    return problems


@pytest.mark.parametrize("aid", IDS)
def test_release_equals_a_fresh_generate_assignment(aid, fresh):
    assert (COURSE / aid).is_dir() and (fresh / aid).is_dir(), f"{aid} is missing on one side"
    ours, theirs = files(COURSE / aid), files(fresh / aid)
    assert ours == theirs, (f"course/{aid} files differ from a fresh release: extra {sorted(ours - theirs)}, "
                            f"missing {sorted(theirs - ours)}")
    problems = []
    for rel in sorted(ours):
        a, b = COURSE / aid / rel, fresh / aid / rel
        if rel.endswith(".ipynb"):
            problems += _diff_notebooks(read(a), read(b), f"course/{aid}/{rel}")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"course/{aid}/{rel}: bytes differ from the fresh release")
    assert not problems, (f"course/{aid} is out of date (nbgrader generate_assignment {aid} --force):\n"
                          + "\n".join(problems[:20]))


@pytest.mark.parametrize("aid", IDS)
def test_no_solution_or_hidden_test_reaches_the_release(aid):
    leaks = []
    for path in sorted((COURSE / aid).rglob("*")):
        if path.is_file():
            text = path.read_text("utf-8", errors="replace")
            leaks += [f"{path.relative_to(COURSE)}: {m!r}" for m in MARKER_TEXT if m in text]
    for src in notebooks(SOLUTIONS / aid):
        rel = src.relative_to(SOLUTIONS / aid)
        released = COURSE / aid / rel
        if not released.is_file():
            continue
        solution, hidden = secret_lines(read(src))
        shown = {line.strip() for cell in read(released).cells for line in cell.source.split("\n")}
        leaks += [f"{aid}/{rel}: solution line {s!r}" for s in sorted(solution & shown)]
        leaks += [f"{aid}/{rel}: hidden-test line {s!r}" for s in sorted(hidden & shown)]
    assert not leaks, "\n".join(leaks[:20])


def imported_modules(source: str) -> set[str]:
    """Return the modules a code cell imports (IPython magics and shell lines left out)."""
    import ast

    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_the_import_scanner_sees_every_form():
    assert "tlhelpers.instructor" in imported_modules("from tlhelpers import instructor")
    assert "tlhelpers.instructor.grading" in imported_modules("import tlhelpers.instructor.grading as g")
    assert "tlhelpers.instructor.grading" in imported_modules("%time x = 1\nfrom tlhelpers.instructor.grading import y")


@pytest.mark.parametrize("side", ["solutions", "course"])
@pytest.mark.parametrize("aid", IDS)
def test_no_notebook_imports_the_instructor_package(aid, side):
    """Students never import tlhelpers.instructor: what test cells call (forbid) is in the student package."""
    for path in notebooks((SOLUTIONS if side == "solutions" else COURSE) / aid):
        for cell in read(path).cells:
            if cell.cell_type == "code":
                wrong = sorted(m for m in imported_modules(cell.source) if m.startswith("tlhelpers.instructor"))
                assert not wrong, f"{path.relative_to(path.parents[2])}: {grade_id(cell) or 'a cell'} imports {wrong}"


@pytest.mark.parametrize("side", ["solutions", "course"])
@pytest.mark.parametrize("aid", IDS)
def test_notebooks_have_no_stored_outputs(aid, side):
    root = SOLUTIONS if side == "solutions" else COURSE
    stored = []
    for path in notebooks(root / aid):
        for i, cell in enumerate(read(path).cells):
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
                stored.append(f"{path.relative_to(root)} cell {i} ({grade_id(cell) or 'code'})")
    assert not stored, "clear all outputs and execution counts before saving:\n" + "\n".join(stored)


@pytest.mark.parametrize("aid", IDS)
def test_grade_ids_are_unique_and_every_graded_cell_has_points(aid):
    problems, seen = [], {}
    for path in notebooks(SOLUTIONS / aid):
        nb = read(path)
        if nb.metadata.get("kernelspec") != KERNELSPEC:
            problems.append(f"{path.name}: kernelspec should be {KERNELSPEC}, got {nb.metadata.get('kernelspec')}")
        for i, cell in enumerate(nb.cells):
            m = meta(cell)
            if not m:
                continue
            gid = m.get("grade_id")
            where = f"{path.name} cell {i} ({gid})"
            if not gid:
                problems.append(f"{where}: nbgrader cell without a grade_id")
                continue
            if (path.name, gid) in seen:
                problems.append(f"{where}: grade_id also used by cell {seen[(path.name, gid)]}")
            seen[(path.name, gid)] = i
            if m.get("schema_version") != 3:
                problems.append(f"{where}: schema_version {m.get('schema_version')} (expected 3)")
            if m.get("grade"):
                points = m.get("points")
                if not isinstance(points, (int, float)) or isinstance(points, bool) or not points > 0:
                    problems.append(f"{where}: a graded cell needs points > 0, got {points!r}")
                if not m.get("solution") and not m.get("locked"):
                    problems.append(f"{where}: a test cell must be locked")
            if m.get("solution") and m.get("locked"):
                problems.append(f"{where}: an answer cell must not be locked, or the student cannot write in it")
            if "BEGIN HIDDEN TESTS" in cell.source and not (m.get("grade") and not m.get("solution")):
                problems.append(f"{where}: hidden tests outside a test cell")
    assert not problems, "\n".join(problems)
