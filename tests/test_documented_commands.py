"""Every ``python -m tlhelpers...`` command that README.md and docs/*.md show runs, with tiny arguments.

The commands are read from the documents themselves (fenced ``bash`` blocks and inline code),
so a command added to the documentation is run here too, or this test fails until it is
given tiny arguments below. Tiny means: a one-cell notebook instead of the course, 32 px
images instead of 96, the two-second probe2 assignment instead of 03-feature-extraction.
The benchmarks run in this process (fast tier); the grading command and the grading
benchmark grade a real class in sandboxes (slow tier).
"""
from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from support.course import command_env, make_course, nbgrader, submit
from support.docs import documented
from support.notebooks import Assignment
from support.probes import build_probe2

FEATURES_TINY = ["--sizes", "32", "--images", "4", "--naive-images", "2", "--batch", "2", "--repeats", "1",
                 "--warmup", "0"]
COMMANDS = documented()
# The class hub and its load driver need root, a proxy and a browser: tests/test_hub.py starts the
# class from the documented lines themselves (support.docs.documented), with tiny arguments.
HUB = [c for c in COMMANDS if c.startswith("tlhelpers.instructor.hub")]
BENCH = [c for c in COMMANDS if c.startswith("tlhelpers.instructor.bench ") and " grading" not in c]
GRADING = [c for c in COMMANDS if c not in BENCH and c not in HUB]


def test_the_documents_show_the_commands_this_file_knows():
    assert "tlhelpers.instructor.bench features" in COMMANDS and BENCH and GRADING and HUB, COMMANDS
    unknown = [c for c in COMMANDS if not c.startswith(("tlhelpers.instructor.bench ", "tlhelpers.instructor.grade",
                                                        "tlhelpers.instructor.hub"))]
    assert not unknown, f"documented commands with no tiny version here: {unknown}"


def _bench_argv(command: str, tmp_path: Path) -> list[str]:
    """The documented bench command's arguments, made tiny (argparse keeps the last of a repeated option)."""
    argv = shlex.split(command)[1:]
    if argv[0] == "features":
        return argv + FEATURES_TINY
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('tiny')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb" / "00-tiny").mkdir(parents=True)
    nbformat.write(nb, str(tmp_path / "nb" / "00-tiny" / "tiny.ipynb"))
    argv = [str(tmp_path / "runs") if a == "/tmp/runs" else a for a in argv]
    return argv + ["--glob", str(tmp_path / "nb" / "*" / "*.ipynb"), "--warmup", "0"]


@pytest.mark.parametrize("command", BENCH)
def test_documented_benchmark_runs(command, tmp_path, capsys):
    module = importlib.import_module(shlex.split(command)[0])
    assert module.main(_bench_argv(command, tmp_path)) == 0, capsys.readouterr().out[-3000:]
    assert "==" in capsys.readouterr().out, "the benchmark prints its header and results"


@pytest.fixture(scope="module")
def tiny_course(tmp_path_factory):
    """A course with probe2 released and one student's solution submitted."""
    root = tmp_path_factory.mktemp("documented")
    course = make_course(root / "course", [], extra={"probe2": build_probe2(root / "src" / "probe2")})
    nbgrader(course, "generate_assignment", "probe2", "--force")
    probe = Assignment.load("probe2", course / "solutions", course / "course")
    submit(course, "ada", "probe2", "probe2", probe.solved())
    return course


@pytest.fixture(scope="module")
def scheduler():
    """A Dask scheduler with one worker (threads of this process) on 127.0.0.1."""
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is in the instructor extra")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=":0") as cluster:  # reachable from the command; any free port
        yield cluster.scheduler_address


def _grading_argv(command: str, address: str) -> list[str]:
    """The documented grading command's arguments: probe2 for any assignment, a local scheduler."""
    argv = []
    for arg in shlex.split(command.replace("<that address>", address))[1:]:
        if re.fullmatch(r"\d\d-[a-z-]+", arg):
            arg = "probe2"
        elif re.fullmatch(r"(tcp|tls)://[^ ]+", arg):
            arg = address  # TLS itself: tests/test_grade_command.py's Dask test
        argv.append(arg)
    if argv[:1] == ["grading"]:
        return argv + ["--assignment", "probe2", "--submissions", "2", "--jobs", "2"]
    return argv + ["--no-progress", "--force"] if argv else argv  # --force: each one grades, none skips


@pytest.mark.slow
@pytest.mark.parametrize("command", GRADING)
def test_documented_grading_command_runs(command, tiny_course, scheduler, bwrap):   # the commands grade sandboxed
    argv = _grading_argv(command, scheduler)
    proc = subprocess.run([sys.executable, "-m", shlex.split(command)[0], *argv], cwd=tiny_course,
                          env=command_env(tiny_course), capture_output=True, text=True, timeout=900)
    if not argv:  # the bare command: usage, exit 2
        assert proc.returncode == 2 and "ASSIGNMENT or --all" in proc.stderr, proc.stderr[-2000:]
        return
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if argv[0] != "grading":
        assert "graded 1, not graded 0" in proc.stderr, proc.stderr[-3000:]
        assert ("Dask scheduler" in proc.stderr) == ("--scheduler" in argv), proc.stderr[-3000:]
