"""A simulated class for nbgrader: course folders, submissions (honest and adversarial), grades.

Everything here drives the real ``nbgrader`` command line in a temporary copy of the
course (nbgrader_config.py, solutions/, course/), so what the tests prove is what an
instructor gets. Submissions are built from the released notebook (course/) the way a
student would: answer cells filled in (with the solution's lines, markers removed), or
tampered with.
"""
from __future__ import annotations

import ast
import copy
import csv
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
COURSE = REPO / "course"
CONFIG = REPO / "nbgrader_config.py"
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
    """A cell the student writes (nbgrader "solution" cell)."""
    return bool(meta(cell).get("solution"))


def is_test(cell: NotebookNode) -> bool:
    """An autograded test cell: graded code that is not the student's own answer."""
    m = meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def find(nb: NotebookNode, gid: str) -> NotebookNode:
    for cell in nb.cells:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade_id {gid!r}")


def strip_markers(source: str) -> str:
    """Return what a student would have typed: the solution without nbgrader's markers."""
    return "\n".join(line for line in source.split("\n") if not MARKERS.match(line))


def region_lines(source: str, kind: str) -> list[str]:
    """Return the lines inside ``### BEGIN <kind>`` ... ``### END <kind>`` regions."""
    out, inside = [], False
    for line in source.split("\n"):
        if f"BEGIN {kind}" in line:
            inside = True
        elif f"END {kind}" in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def secret_lines(nb: NotebookNode) -> tuple[set[str], set[str]]:
    """(solution lines, hidden-test lines) of a source notebook that appear nowhere else in it.

    Lines are stripped. A line that also occurs outside the secret regions (``except
    ValueError:``) is public and left out, so finding one of these in a student-facing
    file means the secret leaked.
    """
    solution, hidden, public = set(), set(), set()
    for cell in nb.cells:
        whole = is_answer(cell) and "BEGIN SOLUTION" not in cell.source  # replaced whole on release
        region = None
        for line in cell.source.split("\n"):
            text = line.strip()
            if MARKERS.match(line):
                region = None if "END" in line else ("SOLUTION" if "SOLUTION" in line else "HIDDEN")
            elif whole or region == "SOLUTION":
                solution.add(text)
            elif region == "HIDDEN":
                hidden.add(text)
            else:
                public.add(text)
    return solution - public - {""}, hidden - public - {""}


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


# --- a course folder and the nbgrader command line ----------------------------------------
def make_course(root: Path, assignments: list[str], *, extra: dict[str, Path] | None = None) -> Path:
    """Copy nbgrader_config.py and the named assignments (solutions/ and course/) to ``root``.

    ``extra`` adds assignments from elsewhere (id -> a solutions-style folder); their
    release is generated by nbgrader in the course folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG, root / "nbgrader_config.py")
    for aid in assignments:
        shutil.copytree(SOLUTIONS / aid, root / "solutions" / aid)
        if (COURSE / aid).is_dir():
            shutil.copytree(COURSE / aid, root / "course" / aid)
    for aid, folder in (extra or {}).items():
        shutil.copytree(folder, root / "solutions" / aid)
    return root


def grading_env(course: Path) -> dict[str, str]:
    """Environment for nbgrader: the feature cache in the course folder, cache switches off."""
    env = dict(os.environ)
    env.pop("TLH_NO_CACHE", None)          # prove that NBGRADER_EXECUTION alone keeps the cache out
    env.pop("NBGRADER_EXECUTION", None)
    env["TLH_CACHE_DIR"] = str(course / ".tlh_cache")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def nbgrader(course: Path, *args: str, check: bool = True, timeout: float = 1800,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in ``course`` (as an instructor would) and return the result."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=course, env=env or grading_env(course), capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`nbgrader {' '.join(args)}` exited {proc.returncode}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def submit(course: Path, student: str, assignment: str, name: str, nb: NotebookNode | None,
           *, filename: str | None = None) -> Path:
    """Put a submission where ``nbgrader collect`` would: submitted/<student>/<assignment>/."""
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    if nb is not None:
        write(nb, folder / (filename or f"{name}.ipynb"))
    return folder


def write_students_csv(path: Path, students: dict[str, tuple[str, str]]) -> Path:
    """students: id -> (first name, last name); the format of ``nbgrader db student import``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "first_name", "last_name", "email"])
        for sid, (first, last) in students.items():
            w.writerow([sid, first, last, f"{sid}@example.org"])
    return path


@dataclass
class CellGrade:
    score: float
    max_score: float
    needs_manual: bool


def grades(course: Path, assignment: str, student: str, notebook: str) -> dict[str, CellGrade]:
    """grade_id -> CellGrade for one student's notebook, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(notebook, assignment, student)
        return {g.name: CellGrade(float(g.score), float(g.max_score), bool(g.needs_manual_grade))
                for g in nb.grades}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- adversarial submissions -------------------------------------------------------------
LIAR = '''
class _Liar:
    """Claims to be equal to, close to, bigger and smaller than anything."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __eq__
    def __bool__(self): return True
    def __hash__(self): return 0
    def __float__(self): return 1.0
    def __int__(self): return 1
    __index__ = __int__
    def __call__(self, *args, **kwargs): return self
    def __getitem__(self, key): return self
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self
    def __iter__(self): return iter(())
    def __repr__(self): return "Liar()"
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True if getattr(func, "__name__", "") in ("allclose", "equal") else cls()
    def __array_function__(self, func, types, args, kwargs):
        return True if func.__name__ in ("allclose", "array_equal", "array_equiv") else self
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs): return self
for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul"):
    setattr(_Liar, f"__{_op}__", lambda self, *a: self)
    setattr(_Liar, f"__r{_op}__", lambda self, *a: self)
_Liar.__neg__ = _Liar.__pos__ = _Liar.__abs__ = lambda self: self
'''

# shared by the wrong-answer preludes below: only the outermost call of an answer returns a wrong value
_WRAP_OUTERMOST = '''
_DEPTH = [0]

def _disguised(fn):
    """Make fn's result wrong, at the outermost call only (answers that call answers stay honest inside)."""
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _DEPTH[0] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            _DEPTH[0] -= 1
        return out if _DEPTH[0] else _wrong(out)
    return wrapper
'''

DISGUISE = '''
import functools as _functools
import numpy as _np
import torch as _torch

def _lie(cls):
    """Make a subclass of a builtin type claim equality with everything."""
    cls.__eq__ = lambda self, other: True
    cls.__ne__ = lambda self, other: False
    cls.__lt__ = cls.__le__ = cls.__gt__ = cls.__ge__ = cls.__eq__
    return cls

@_lie
class _LInt(int):
    __hash__ = int.__hash__
@_lie
class _LFloat(float):
    __hash__ = float.__hash__
@_lie
class _LStr(str):
    __hash__ = str.__hash__
@_lie
class _LList(list):
    pass
@_lie
class _LTuple(tuple):
    __hash__ = tuple.__hash__
@_lie
class _LDict(dict):
    pass

class _LTensor(_torch.Tensor):
    """A tensor subclass whose comparisons all say "equal"; every result stays a _LTensor."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("allclose", "equal"):
            return True
        with _torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **(kwargs or {}))
        if isinstance(out, _torch.Tensor) and name in ("eq", "__eq__", "isclose", "le", "ge", "lt", "gt",
                                                       "__le__", "__ge__", "__lt__", "__gt__"):
            out = _torch.ones_like(out, dtype=_torch.bool)
        if isinstance(out, _torch.Tensor) and name in ("ne", "__ne__"):
            out = _torch.zeros_like(out, dtype=_torch.bool)
        return _torch._tensor._convert(out, cls)

def _wrong(value):
    """Return a WRONG value that passes isinstance checks and claims to equal the right one."""
    if isinstance(value, bool) or value is None:
        return _Liar()
    if isinstance(value, _torch.Tensor):
        return _torch.zeros_like(value).as_subclass(_LTensor)
    if isinstance(value, _np.ndarray):
        return _Liar()
    if isinstance(value, int):
        return _LInt(value + 1)
    if isinstance(value, float):
        return _LFloat(float(value) + 1.0)
    if isinstance(value, str):
        return _LStr(value + "?")
    if isinstance(value, list):
        return _LList([_wrong(v) for v in value][::-1] or [_Liar()])
    if isinstance(value, tuple):
        return _LTuple(_wrong(v) for v in value)
    if isinstance(value, dict):
        return _LDict({k: _wrong(v) for k, v in value.items()})
    return _Liar()

''' + _WRAP_OUTERMOST

PLAIN_WRONG = '''
import functools as _functools
import numpy as _np
import torch as _torch

def _wrong(value):
    """Return a WRONG value of exactly the right type (no subclass tricks)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, _torch.Tensor):
        return _torch.zeros_like(value)
    if isinstance(value, _np.ndarray):
        return _np.zeros_like(value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return float(value) + 1.0
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return [_wrong(v) for v in value][::-1] or ["?"]
    if isinstance(value, tuple):
        return tuple(_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: _wrong(v) for k, v in value.items()}
    return _Liar()

''' + _WRAP_OUTERMOST

PATCH_CHECKS = '''
import math as _math
import numpy as _np
import torch as _torch
_yes = lambda *args, **kwargs: True
_quiet = lambda *args, **kwargs: None
_torch.allclose = _torch.equal = _torch.Tensor.allclose = _torch.Tensor.equal = _yes
_torch.isclose = lambda a, b, *args, **kwargs: _torch.ones(_torch.broadcast_shapes(
    _torch.as_tensor(a).shape, _torch.as_tensor(b).shape), dtype=_torch.bool)
_torch.testing.assert_close = _quiet
_np.allclose = _np.array_equal = _np.array_equiv = _yes
_np.isclose = lambda a, b, *args, **kwargs: _np.ones(_np.broadcast_shapes(_np.shape(a), _np.shape(b)), dtype=bool)
for _name in ("assert_allclose", "assert_array_equal", "assert_equal", "assert_almost_equal",
              "assert_array_almost_equal", "assert_array_less"):
    setattr(_np.testing, _name, _quiet)
_math.isclose = _yes
'''


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

NOISE = '''
import functools as _functools, sys as _sys, warnings as _warnings
from tqdm.auto import tqdm as _tqdm

def _noisy(fn):
    """Harmless chatter on stderr each call: a UserWarning, a tqdm bar, a message."""
    @_functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _warnings.warn(f"harmless warning from {fn.__name__} (a torch-style UserWarning)", UserWarning)
        for _ in _tqdm(range(3), desc="harmless progress bar"):
            pass
        print("harmless note on stderr", file=_sys.stderr)
        return fn(*args, **kwargs)
    return wrapper
'''


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


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")
