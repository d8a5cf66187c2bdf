"""Fast checks of the class-grading command's parts (no kernel runs; the end-to-end tests are slow).

tests/test_grade_command.py grades real submissions; here: the content hash and the rerun
state, the sandbox's command line, the single writer on a real gradebook, the command's
refusals, and RestoreMissingGradedCells on nbgrader's own data (with nbgrader's failure it fixes).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest

from tlhelpers.instructor import bwrap as B
from tlhelpers.instructor import course as C
from tlhelpers.instructor import grade as G
from tlhelpers.instructor import watchdog, worker
from tlhelpers.instructor.contract import Kind, Result
from tlhelpers.instructor.writer import write_result

from support.paths import CONFIG, REPO
from support.probes import build_probe2


def test_content_hash_changes_with_any_byte_or_name_and_not_with_order():
    a = {"nb.ipynb": b"{}", "data.csv": b"1,2"}
    assert C.content_hash(a) == C.content_hash(dict(reversed(list(a.items()))))
    assert C.content_hash(a) != C.content_hash({**a, "data.csv": b"1,3"})
    assert C.content_hash(a) != C.content_hash({"nb2.ipynb": b"{}", "data.csv": b"1,2"})
    assert C.content_hash(a, {"x": b""}) != C.content_hash(a, {"y": b""})


def test_state_round_trip_is_atomic_json(tmp_path):
    course = C.Course(tmp_path)
    state = C.State(course)
    assert not state.current("ada/01", "h1")
    state.record("ada/01", hash="h1", graded_at="now", host="here", seconds=1.0)
    again = C.State(course)
    assert again.current("ada/01", "h1") and not again.current("ada/01", "h2")
    assert not list((tmp_path / "autograded").glob(".tlh-state-*")), "no temporary file left behind"


def test_sandbox_command_binds_only_the_throwaway_folder_writable(tmp_path):
    uid = worker.UID_BASE + 7
    cmd = B.bwrap_command(tmp_path, ["python", "-c", "pass"], uid=uid)
    text = " ".join(cmd)
    assert ["--bind", str(tmp_path), B.INSIDE] == cmd[cmd.index("--bind"):cmd.index("--bind") + 3]
    assert text.count("--bind ") == 1, "exactly one read-write bind"
    assert ["--cap-drop", "ALL"] == cmd[cmd.index("--cap-drop"):cmd.index("--cap-drop") + 2]
    assert {"--unshare-net", "--unshare-pid"} <= set(cmd) or "--unshare-all" in cmd
    if os.geteuid() == 0:  # root mounts, then drops to nobody before running anything of the submission's
        assert f"--reuid={uid}" in cmd and cmd.index(f"--reuid={uid}") < cmd.index("python")
        assert "--unshare-user" not in cmd and "--unshare-all" not in cmd
    assert str(REPO) not in text.replace(str(REPO / "tlhelpers"), ""), "the course root is not in the sandbox"
    assert "--die-with-parent" in cmd and "--ro-bind" in cmd
    for mount in ("/tmp", "/dev/shm"):  # in memory: sized, or a submission could fill the machine's memory
        at = len(cmd) - 1 - cmd[::-1].index(mount)
        assert cmd[at - 1] == "--tmpfs" and cmd[at - 3] == "--size" and int(cmd[at - 2]) == B.TMPFS_MB << 20, mount
        # mounted before the Python environment is bound: a virtualenv under /tmp stays visible
        assert at < min(i for i, a in enumerate(cmd) if a == "--ro-bind" and cmd[i + 1] in B.python_roots()), mount


@pytest.mark.parametrize("address, private", [
    ("tls://10.0.0.5:8786", True), ("tcp://127.0.0.1:8786", True), ("tcp://localhost:8786", True),
    ("tcp://[::1]:8786", True), ("tcp://10.0.0.5:8786", False), ("10.0.0.5:8786", False),
    ("tcp://grading.example.org:8786", False)])
def test_only_a_tls_or_loopback_scheduler_goes_without_a_warning(address, private):
    assert G._private_address(address) is private


def test_each_submission_graded_at_once_gets_a_uid_of_its_own():
    with worker.sandbox_user() as a, worker.sandbox_user() as b:
        assert a != b and min(a, b) >= worker.UID_BASE
    with worker.sandbox_user() as c:
        assert c == a, "a finished submission's uid is reused"


def test_the_disk_watch_counts_what_a_submission_hid_from_its_owner(tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "big.bin").write_bytes(b"x" * (3 << 20))
    hidden.chmod(0)
    used, entries = watchdog.disk_usage(tmp_path)
    assert used >= 3 << 20 and entries == 2


def test_sandboxed_kernel_hides_the_private_course_and_dies_with_its_processes():
    spec = B.kernel_spec("/grading/private", "/grading/private/course/autograded/a/x", sandboxed=True)
    argv = spec["argv"]
    assert argv[0] == "bwrap" and ["--tmpfs", "/grading/private"] == argv[argv.index("--tmpfs"):argv.index("--tmpfs") + 2]
    assert "--unshare-pid" in argv and spec["interrupt_mode"] == "message"
    assert "{connection_file}" in argv
    assert B.kernel_spec("/p", "/p/n", sandboxed=False)["argv"][0] == sys.executable


@pytest.mark.slow  # nbgrader's own stamping runs `alembic heads` in a second process (5-10 s)
def test_the_shared_empty_gradebook_is_stamped_as_nbgrader_stamps_a_new_one(tmp_path):
    import sqlite3

    from nbgrader.api import Gradebook, get_alembic_version

    path = tmp_path / "gradebook.db"
    path.write_bytes(worker.empty_gradebook())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(get_alembic_version(),)]
    with Gradebook(f"sqlite:///{path}") as gb:  # nbgrader takes it as an existing, current gradebook
        gb.add_student("ada")
        assert [s.id for s in gb.students] == ["ada"]


def test_the_font_list_given_to_each_sandbox_is_one_matplotlib_reads_back(tmp_path):
    from matplotlib import font_manager

    name, data = worker.font_cache()
    (tmp_path / name).write_bytes(data)
    fonts = font_manager.json_load(tmp_path / name)
    assert name == f"fontlist-v{font_manager.FontManager.__version__}.json"
    assert fonts.ttflist and all(Path(f.fname).is_file() for f in fonts.ttflist)
    assert Path(fonts.findfont("DejaVu Sans", rebuild_if_missing=False)).name == "DejaVuSans.ttf"


def _run(args, course: Path, capsys) -> tuple[int, str]:
    """The command, in process (the same main() as ``python -m tlhelpers.instructor.grade``)."""
    try:
        code = G.main([*args, "--course", str(course)])
    except SystemExit as err:  # argparse's usage errors
        code = err.code
    return code, capsys.readouterr().err


def test_command_refuses_without_a_course_or_an_assignment(tmp_path, capsys):
    assert _run(["x"], tmp_path, capsys)[0] == 2
    (tmp_path / "nbgrader_config.py").write_text("")
    assert _run([], tmp_path, capsys)[0] == 2
    assert "no solutions/x/" in _run(["x"], tmp_path, capsys)[1]


def test_command_without_a_sandbox_stops_and_names_the_flag(tmp_path, capsys, monkeypatch):
    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "solutions" / "x").mkdir(parents=True)
    monkeypatch.setenv("PATH", "/nonexistent")
    code, err = _run(["x"], tmp_path, capsys)
    assert code == 3, err
    assert "bubblewrap is not installed" in err and "--unsandboxed" in err


# --- nbgrader's own data: a gradebook made by generate_assignment, in process -------------------
@pytest.fixture(scope="module")
def probe_gradebook(tmp_path_factory):
    """A course with probe2 (a written answer right after a locked markdown cell), its gradebook built."""
    from nbgrader.apps.api import NbGraderAPI
    from traitlets.config import Config

    root = tmp_path_factory.mktemp("restore")
    build_probe2(root / "solutions" / "probe2")
    cfg = Config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.source_directory = "solutions"
    cfg.CourseDirectory.release_directory = "course"
    done = NbGraderAPI(config=cfg).generate_assignment("probe2", force=True)
    assert done["success"], done
    return root


def _resources(root: Path) -> dict:
    return {"nbgrader": {"db_url": f"sqlite:///{root / 'gradebook.db'}", "notebook": "probe2",
                         "assignment": "probe2", "student": "s"}}


def _without(root: Path, gid: str):
    import nbformat

    nb = nbformat.read(str(root / "course" / "probe2" / "probe2.ipynb"), as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != gid]
    return nb


def test_nbgrader_alone_cannot_restore_a_written_answer_after_a_locked_markdown_cell(probe_gradebook):
    from nbgrader.preprocessors import OverwriteCells

    nb = _without(probe_gradebook, "interpret")
    with pytest.raises(KeyError):
        OverwriteCells(add_missing_cells=True).preprocess(nb, _resources(probe_gradebook))


@pytest.mark.parametrize("gid", ["interpret", "correct_square", "correct_cube"])
def test_restore_missing_graded_cells_puts_the_cell_back_at_its_source_position(probe_gradebook, gid):
    from nbgrader import utils
    from nbgrader.preprocessors import OverwriteCells

    from tlhelpers.instructor.grading import RestoreMissingGradedCells

    full = _without(probe_gradebook, "nothing")
    nb, _ = RestoreMissingGradedCells().preprocess(_without(probe_gradebook, gid), _resources(probe_gradebook))
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids == [c.metadata.get("nbgrader", {}).get("grade_id") for c in full.cells]
    cell = nb.cells[ids.index(gid)]
    assert utils.is_grade(cell)
    if gid == "interpret":
        assert cell.source == "" and utils.is_solution(cell) and cell.cell_type == "markdown"
    else:
        assert "assert" in cell.source and not utils.is_solution(cell)
    nb, _ = OverwriteCells(add_missing_cells=True).preprocess(copy.deepcopy(nb), _resources(probe_gradebook))
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells] == ids, "nothing added twice"


def test_config_restores_before_overwriting():
    import runpy

    from traitlets.config import Config

    c = Config()
    runpy.run_path(str(CONFIG), init_globals={"get_config": lambda: c})
    names = [k.__name__ for k in c.Autograde.sanitize_preprocessors]
    assert names.index("RestoreMissingGradedCells") < names.index("OverwriteCells")


# --- the single writer --------------------------------------------------------------------
def test_writer_copies_a_result_into_the_gradebook_and_keeps_manual_grades(probe_gradebook, tmp_path):
    import shutil

    from nbgrader.api import Gradebook

    course = C.Course(tmp_path)
    shutil.copy(probe_gradebook / "gradebook.db", tmp_path / "gradebook.db")
    grades = {"correct_square": {"auto_score": 1.0, "needs_manual_grade": False},
              "correct_cube": {"auto_score": 0.0, "needs_manual_grade": False},
              "interpret": {"auto_score": None, "needs_manual_grade": True}}
    result = Result("ada", "probe2", Kind.GRADED, timestamp="2030-01-01T10:00:00",
                    notebooks={"probe2": {"late_submission_penalty": None, "grades": grades,
                                          "comments": {"interpret": {"auto_comment": "No response."}}}},
                    autograded={"probe2.ipynb": b"{}", "../escape.txt": b"x", C.STATE_FILE: b"forged"})
    write_result(course, result)
    with Gradebook(course.db_url) as gb:
        nb = gb.find_submission_notebook("probe2", "probe2", "ada")
        got = {g.name: (g.auto_score, g.needs_manual_grade) for g in nb.grades}
        nb.grades[[g.name for g in nb.grades].index("correct_cube")].manual_score = 0.5  # a grader's score
        gb.db.commit()
    assert got == {"correct_square": (1.0, False), "correct_cube": (0.0, False), "interpret": (None, True)}
    assert (tmp_path / "autograded" / "ada" / "probe2" / "probe2.ipynb").read_bytes() == b"{}"
    assert not (tmp_path / "autograded" / "ada" / "escape.txt").exists(), "no path outside the folder"
    assert not (tmp_path / "autograded" / "ada" / "probe2" / C.STATE_FILE).exists()
    write_result(course, result)  # regraded: the manual score stays and is marked for review
    with Gradebook(course.db_url) as gb:
        cube = [g for g in gb.find_submission_notebook("probe2", "probe2", "ada").grades if g.name == "correct_cube"][0]
        assert cube.manual_score == 0.5 and cube.needs_manual_grade


def _cell(source: str, *outputs, test: bool = False, answer: bool = False):
    """A code cell of an autograded notebook: a test cell (locked, graded), an answer cell, or a release cell."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": test, "grade_id": f"c{abs(hash(source))}", "locked": not answer,
                                 "solution": answer, "schema_version": 3, **({"points": 1} if test else {})}
    cell.outputs = list(outputs)
    return cell


def _out(kind: str, **fields):
    import nbformat

    return nbformat.v4.new_output(kind, **fields)


HIDDEN = "assert f(-1) == 0, 'negative numbers too'"
TEST = f"assert f(1) == 2, 'f adds one'\n### BEGIN HIDDEN TESTS\n{HIDDEN}\n### END HIDDEN TESTS"


def _feedback(*cells):
    import nbformat

    from tlhelpers.instructor.feedback import HideHiddenTests

    nb, _ = HideHiddenTests().preprocess(nbformat.v4.new_notebook(cells=list(cells)), {})
    return nb


def test_feedback_hides_hidden_test_code_and_its_traceback_but_keeps_the_message():
    before = _cell("x = 1", _out("error", ename="NameError", evalue="y", traceback=["y + 1"]), answer=True)
    test = _cell(TEST, _out("error", ename="AssertionError", evalue="negative numbers too", traceback=[HIDDEN]),
                 test=True)
    out = _feedback(before, test)
    assert out.cells[1].source == "assert f(1) == 2, 'f adds one'"
    shown = "\n".join(out.cells[1].outputs[0].traceback)
    assert "f(-1)" not in shown and "negative numbers too" in shown
    assert out.cells[0].outputs == before.outputs, "a cell that ran before any hidden test keeps its traceback"


def test_feedback_carries_no_hidden_test_out_however_the_submission_encodes_it():
    """A pre_run_cell hook, the input history, base64/rot13/reversed, an error message, a display update."""
    import base64
    import codecs

    stolen = TEST
    encodings = [stolen, base64.b64encode(stolen.encode()).decode(), codecs.encode(stolen, "rot13"), stolen[::-1]]
    leak = "\n".join(encodings)
    cells = [
        _cell("def f(x):\n    return x + 1", _out("stream", name="stdout", text="honest output\n"),
              _out("display_data", data={"text/plain": leak}), answer=True),      # rewritten by a display update
        _cell(TEST, _out("stream", name="stdout", text=leak),                        # the pre_run_cell hook
              _out("error", ename="AssertionError", evalue="negative numbers too", traceback=[leak]), test=True),
        _cell("print(In)", _out("stream", name="stdout", text=leak), answer=True),  # the history, later
        _cell("assert f(2) == 3, f'f(2) is {f(2)}'",                               # an error the student raised
              _out("error", ename="AssertionError", evalue=leak, traceback=[leak]), test=True),
        _cell("assert f(3) == 4, f'f(3) is {f(3)}'",                               # an instructor's f-string
              _out("error", ename="MyError", evalue="f(3) is " + leak, traceback=[leak]), test=True),
    ]
    text = str(_feedback(*cells))
    assert not any(e in text or e.replace("\n", "\\n") in text for e in encodings), "a hidden test left in feedback"
    assert "f(-1)" not in text and "s(-1)" not in text
    out = _feedback(*cells)
    assert out.cells[0].outputs[0].text == "honest output\n", "text from before any hidden test is kept"
    assert "negative numbers too" in out.cells[1].outputs[0].traceback[0], "an instructor's message is kept"
    assert out.cells[3].outputs[0].evalue == "" and out.cells[3].outputs[0].ename == "AssertionError"
    assert out.cells[4].outputs[0].evalue == "f(3) is …" and out.cells[4].outputs[0].ename == "Error"
    assert out.cells[2].source == "print(In)", "the student's own source stays"


def test_a_students_unmatched_hidden_test_marker_does_not_break_feedback():
    out = _feedback(_cell("# BEGIN HIDDEN TESTS, said the student", answer=True))
    assert out.cells[0].source == "# BEGIN HIDDEN TESTS, said the student"


# --- what the command decides before any sandbox: unreadable notebooks, the rerun hash -----------
def _course_with(probe_gradebook, tmp_path, notebook: bytes) -> C.Course:
    """A copy of the probe2 course with ada's submission holding ``notebook``."""
    import shutil

    shutil.copytree(probe_gradebook, tmp_path / "course")
    (tmp_path / "course" / "nbgrader_config.py").write_text("")
    folder = tmp_path / "course" / "submitted" / "ada" / "probe2"
    folder.mkdir(parents=True)
    (folder / "probe2.ipynb").write_bytes(notebook)
    return C.Course(tmp_path / "course")


def test_a_corrupt_notebook_is_reported_with_its_file_and_json_error(probe_gradebook, tmp_path, capsys, monkeypatch):
    course = _course_with(probe_gradebook, tmp_path, b'{"cells": [\n  {"cell_type": "code",\n')
    monkeypatch.setattr(worker, "grade_one", lambda job: pytest.fail("an unreadable notebook reached a worker"))
    code, err = _run(["probe2", "--unsandboxed", "--no-progress"], course.root, capsys)
    assert code == 1, err
    assert ("NOT GRADED ada/probe2: submitted/ada/probe2/probe2.ipynb is not a notebook: not valid JSON "
            "(Expecting") in err and "line 3 column 1" in err, err
    assert "NOT GRADED" in (course.root / "nbgrader.log").read_text()


@pytest.mark.parametrize("data, says", [(b"\xff\xfe", "not UTF-8"), (b'{"a": 1}', "is not a notebook: "),
                                        (b"[1, 2", "not valid JSON")])
def test_notebook_problem_names_the_file_and_what_is_wrong(data, says):
    assert says in C.notebook_problem("x.ipynb", data) and C.notebook_problem("x.ipynb", data).startswith("x.ipynb")
    assert C.notebook_problem("x.ipynb", nbformat_bytes()) is None


def nbformat_bytes() -> bytes:
    import nbformat

    return nbformat.writes(nbformat.v4.new_notebook()).encode()


def test_a_rerun_regrades_after_a_changed_limit_or_a_changed_tlhelpers(probe_gradebook, tmp_path, monkeypatch):
    """The rerun hash covers the limits and every file of tlhelpers (hidden tests call forbid and the helpers)."""
    import shutil

    from tlhelpers.instructor.contract import Limits

    course = _course_with(probe_gradebook, tmp_path, nbformat_bytes())
    graded = []

    def fake(job):
        graded.append(job.limits)
        grades = {g: {"auto_score": 1.0, "needs_manual_grade": False} for g in ("correct_square", "correct_cube")}
        return Result(job.student, job.assignment, Kind.GRADED, autograded={"probe2.ipynb": b"{}"},
                      notebooks={"probe2": {"late_submission_penalty": None, "grades": grades, "comments": {}}})

    monkeypatch.setattr(worker, "grade_one", fake)
    package = tmp_path / "tlhelpers"
    shutil.copytree(B.package_dir(), package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(B, "package_dir", lambda: str(package))

    def run(**limits):
        G.grade(course, ["probe2"], sandboxed=False, progress=False, limits=Limits(**limits))
        return len(graded)

    assert run(cell_timeout=60) == 1
    assert run(cell_timeout=60) == 1, "nothing changed: nothing regraded"
    assert run(cell_timeout=120) == 2, "a longer cell limit regrades"
    assert run(cell_timeout=120, memory_mb=4096) == 3, "a memory limit too"
    (package / "checks.py").write_text((package / "checks.py").read_text() + "\n# an upgrade\n")
    assert run(cell_timeout=120, memory_mb=4096) == 4, "a changed tlhelpers (forbid, the helpers) regrades"
    assert run(cell_timeout=120, memory_mb=4096) == 4


def test_retries_are_decided_by_kind_not_by_message():
    from tlhelpers.instructor.contract import Job

    job = Job("ada", "x", {}, {}, b"")
    calls = []

    def submit(job):
        calls.append(job.tries)
        kind = Kind.CRASHED if len(calls) == 1 else Kind.OVER_LIMIT
        return _Done(Result.failure(job, kind, "killed by signal SIGKILL" if kind is Kind.OVER_LIMIT else "?"))

    ended = []
    G._run_all([job], submit, lambda active: list(active), retries=3, on_result=lambda j, r: ended.append(r),
               on_retry=lambda j, r: None)
    assert calls == [0, 1] and [r.kind for r in ended] == [Kind.OVER_LIMIT], "a crash is retried, a limit is not"


class _Done:
    """A finished future holding ``value``."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


# --- the instructor package's shape ---------------------------------------------------------------
def _instructor_functions():
    import ast

    for path in sorted((REPO / "tlhelpers" / "instructor").glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        yield from ((path.name, node) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef))


def test_no_instructor_function_is_over_60_lines():
    long = [f"{name}:{node.name} ({node.end_lineno - node.lineno + 1})" for name, node in _instructor_functions()
            if node.end_lineno - node.lineno + 1 > 60]
    assert not long, long


def test_no_preexec_fn_anywhere_in_the_instructor_package():
    """Sandboxes start from threads, where Python warns that preexec_fn can deadlock."""
    import ast

    calls = [f"{name}:{node.name}" for name, node in _instructor_functions() for call in ast.walk(node)
             if isinstance(call, ast.Call) and any(k.arg == "preexec_fn" for k in call.keywords)]
    assert not calls, calls
