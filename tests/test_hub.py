"""A class on a real JupyterHub, from release to feedback, in a real browser (Playwright + Chromium).

``python -m tlhelpers.instructor.hub --students alice,bob,carol`` starts the hub with real Unix
accounts, nbgrader's exchange and the Formgrader as a hub service. Then, as a class would:

- the instructor (the grader account) releases 00-setup and 03-feature-extraction;
- alice logs in, fetches 00-setup in the Assignments tab, answers, sees Validate succeed, submits;
- bob submits the release unchanged; the due date passes; carol submits a full answer, late;
- the instructor collects and grades with ``python -m tlhelpers.instructor.grade`` (sandboxed),
  sees the three scores in the Formgrader, generates and releases feedback;
- alice fetches her feedback in the browser and reads her score;
- ``nbgrader export`` lists all three, carol with her late penalty;
- Ctrl-C stops the hub, and no process of the class is left.

Needs root, Node's configurable-http-proxy, bubblewrap and Chromium (installed when missing, as
root); skips with the reason otherwise (fails under CI=true). Screenshots go to artifacts/.
"""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support import browser as bh
from support import hub as hh
from support.apt import ensure_binary, which
from support.docs import documented
from support.notebooks import grade_id, is_answer, read, strip_markers
from support.paths import ARTIFACTS, SOLUTIONS

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
STUDENTS = ["alice", "bob", "carol"]
INSTRUCTOR = "instructor"
COURSE = "transfer-learning"
GRADER = f"grader-{COURSE}"
ASSIGNMENT, HEAVIER = "00-setup", "03-feature-extraction"
VIEWPORT = {"width": 1280, "height": 900}


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the hub test must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def prerequisites():
    """Root, the proxy, bubblewrap, Chromium and the class's Python, or a skip that says which is missing."""
    if os.environ.get("TLH_SKIP_BROWSER", "").strip().lower() in ("1", "true", "yes"):
        pytest.skip("browser tests switched off by TLH_SKIP_BROWSER")
    if os.geteuid() != 0:
        _unavailable("the class hub test runs as root (it creates Unix accounts)")
    logs = ARTIFACTS
    needs = {"configurable-http-proxy": hh.ensure_proxy(logs / "npm-proxy.log"),
             "bubblewrap": ensure_binary(which("bwrap"), ("bubblewrap",), logs / "apt-bubblewrap.log"),
             "chromium": bh.install_chromium(logs / "apt-chromium.log"),
             "the class's Python": hh.ensure_class_env(logs / "class-env.log")}
    missing = [f"{what}: {reason}" for what, (path, reason) in needs.items() if path is None]
    if missing:
        _unavailable("; ".join(missing))
    foreign = hh.foreign_accounts([*STUDENTS, INSTRUCTOR, GRADER])
    if foreign:
        _unavailable(f"accounts {foreign} exist on this machine and were not made by this test")
    return {what: path for what, (path, _) in needs.items()}


@pytest.fixture(scope="module")
def hub(prerequisites):
    """The class hub, started by the command as an instructor would; stopped (Ctrl-C) at the end."""
    base = Path(tempfile.mkdtemp(prefix="tlh-hub-test-"))
    base.chmod(0o755)  # the users read the class's settings under it
    port, service_port = bh.free_port(), bh.free_port()
    args = documented_args("tlhelpers.instructor.hub", {"--python": prerequisites["the class's Python"]})
    args += ["--students", ",".join(STUDENTS), "--instructors", INSTRUCTOR, "--state", str(base / "state"),
             "--exchange", str(base / "exchange"), "--port", str(port), "--service-port", str(service_port),
             "--reset-passwords"]  # argparse keeps the last of a repeated option
    users = [*STUDENTS, INSTRUCTOR, GRADER]
    running = None
    try:
        running = hh.RunningHub.start(args, port=port, state=base / "state")
        settings = json.loads((base / "state" / "class.json").read_text())
        running.env, running.grader_course_dir = settings["environment"], Path(settings["grader_course_dir"])
        yield running
    finally:
        if running is not None:
            running.exit_code = running.stop()
            print("\n".join(running.output[-5:]))
        hh.mark_as_test_accounts(users)  # none existed before (prerequisites): each is this test's, even after a failed start
        hh.remove_test_accounts(users)
        shutil.rmtree(base, ignore_errors=True)


def documented_args(module: str, values: dict[str, str]) -> list[str]:
    """The arguments of each ``python -m <module>`` line the documents show, the given options' values replaced.

    The longest line is returned (the fullest example of the command).
    """
    lines = [c for c in documented() if c.split()[0] == module]
    assert lines, f"the documents show no python -m {module}"
    runs = []
    for line in lines:
        args = shlex.split(line)[1:]
        runs.append([values.get(args[i - 1], arg) if i else arg for i, arg in enumerate(args)])
    return max(runs, key=len)


@pytest.fixture(scope="module")
def browser(prerequisites):
    from playwright.sync_api import sync_playwright

    # An earlier test that ran notebooks in this process (nbclient) can leave its event loop
    # registered as this thread's running loop; nothing runs it here (this is synchronous code),
    # but Playwright's sync API refuses to start beside one. Clear the stale marker meanwhile.
    stale = asyncio._get_running_loop()
    asyncio._set_running_loop(None)
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=prerequisites["chromium"], headless=True,
                                          args=bh.CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        asyncio._set_running_loop(stale)


# ----------------------------------------------------------------------------- the people
def instructor_cli(hub, *args: str, timeout: float = 600):
    """An nbgrader or course command run by the grader account in the course it holds."""
    proc = hh.as_user(GRADER, "python", *args, env=hub.env, cwd=hub.grader_course_dir, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def student_cli(hub, user: str, *args: str):
    proc = hh.as_user(user, "python", "-m", "nbgrader", *args, "--course", COURSE, env=hub.env)
    assert proc.returncode == 0, f"{user}: nbgrader {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@contextlib.contextmanager
def logged_in(browser, hub, user: str):
    """A browser page with ``user`` logged in to the hub; on a failure, a screenshot and the hub's log."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", hub.passwords[user])
        page.click("#login_submit")
        yield page
    except BaseException:
        shot(page, f"hub-{user}-FAILED.png")
        print(hub.log_tail())
        raise
    finally:
        context.close()


def open_nbgrader(page, item: str) -> None:
    """Open an entry of JupyterLab's Nbgrader menu (Assignment List, Formgrader, ...)."""
    menu = page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$"))
    menu.wait_for(timeout=120_000)
    menu.click()
    page.locator(".lm-Menu:visible .lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    print(f"screenshot: {ARTIFACTS / name}")


def answers_of(assignment: str) -> dict[str, str]:
    source = next((SOLUTIONS / assignment).glob("*.ipynb"))
    return {grade_id(c): strip_markers(c.source) for c in read(source).cells if is_answer(c) and c.cell_type == "code"}


def alice_submits(browser, hub, clock) -> None:
    """Log in, fetch, answer every exercise, Validate (success), submit: all in the browser."""
    with logged_in(browser, hub, "alice") as page:
        open_nbgrader(page, "Assignment List")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
        menu = page.locator(".lm-Menu:visible .lm-Menu-itemLabel").all_inner_texts()
        page.keyboard.press("Escape")
        assert "Assignment List" in menu and not any("Formgrader" in item for item in menu), (
            f"a student's Nbgrader menu: {menu}")
        released = page.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
        page.locator("#released_assignments_list .list_item", has_text=HEAVIER).wait_for()
        released.locator("button", has_text="Fetch").click()
        page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first.wait_for()
        clock("alice fetched 00-setup in the Assignments tab")
        notebook = next((Path("/home/alice") / ASSIGNMENT).glob("*.ipynb"))
        page.goto(f"{hub.url}/user/alice/lab/tree/{ASSIGNMENT}/{notebook.name}")
        panel = page.locator(".jp-NotebookPanel").filter(has=page.locator(".jp-Cell")).first
        page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"^(?!No Kernel).+ \| Idle$")).first.wait_for()
        cells, answers = panel.locator(".jp-Notebook .jp-Cell"), answers_of(ASSIGNMENT)
        for i, cell in enumerate(read(notebook).cells):
            if is_answer(cell) and cell.cell_type == "code":
                editor = cells.nth(i).locator(".cm-content")
                editor.scroll_into_view_if_needed()
                editor.click()
                page.keyboard.press("Control+a")
                page.keyboard.insert_text(answers[grade_id(cell)])
        page.keyboard.press("Control+s")
        panel.locator(".validate-button .jp-ToolbarButtonComponent-label").click()
        dialog = page.locator(".jp-Dialog").filter(has=page.locator("#validation-message"))
        dialog.wait_for(timeout=180_000)
        verdict = dialog.locator("#validation-message")
        assert "validation-success" in (verdict.get_attribute("class") or ""), verdict.inner_text()[:3000]
        clock(f"alice validated: {verdict.inner_text().strip()[:80]}")
        dialog.locator("button.jp-mod-accept").click()
        open_nbgrader(page, "Assignment List")
        page.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first.locator(
            "button", has_text="Submit").click()
        page.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first.wait_for()
        page.wait_for_timeout(500)
        shot(page, "hub-student-assignments.png")
        clock("alice submitted")


def carol_submits_a_full_answer(hub) -> None:
    student_cli(hub, "carol", "fetch_assignment", ASSIGNMENT)
    notebook = next((Path("/home/carol") / ASSIGNMENT).glob("*.ipynb"))
    nb, answers = read(notebook), answers_of(ASSIGNMENT)
    for cell in nb.cells:
        if is_answer(cell) and cell.cell_type == "code":
            cell.source = answers[grade_id(cell)]
    notebook.write_text(json.dumps(nb, indent=1))  # as carol's editor would save it (she owns the file)
    student_cli(hub, "carol", "submit", ASSIGNMENT)


def instructor_sees_scores(browser, hub, clock) -> dict[str, str]:
    """The Formgrader, as a hub service, framed in the instructor's JupyterLab: the scores of 00-setup."""
    with logged_in(browser, hub, INSTRUCTOR) as page:
        page.goto(f"{hub.url}/services/{COURSE}/lab")
        open_nbgrader(page, "Formgrader")
        frame = page.frame_locator("iframe").first
        frame.locator("#main-table td.name", has_text=ASSIGNMENT).first.wait_for()
        frame.locator("a", has_text="Manage Students").first.click()
        frame.locator("#main-table td", has_text="carol").first.wait_for()
        rows = frame.locator("#main-table tr").filter(has=frame.locator("td"))
        # columns: name, student id, email, overall score (over every released assignment), edit
        table = {r.locator("td").nth(1).inner_text().strip(): r.locator("td").nth(3).inner_text().strip()
                 for r in rows.all()}
        shot(page, "hub-formgrader.png")
        clock(f"instructor sees in the Formgrader: {table}")
        return table


def alice_reads_her_feedback(browser, hub, clock) -> str:
    with logged_in(browser, hub, "alice") as page:
        open_nbgrader(page, "Assignment List")
        submitted = page.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first
        submitted.locator("button", has_text="Fetch Feedback").click()
        feedback = sorted(Path("/home/alice", ASSIGNMENT, "feedback").glob("*/*.html"))
        deadline = time.monotonic() + 60
        while not feedback and time.monotonic() < deadline:
            page.wait_for_timeout(500)
            feedback = sorted(Path("/home/alice", ASSIGNMENT, "feedback").glob("*/*.html"))
        assert feedback, "Fetch Feedback brought no feedback into alice's home"
        rel = feedback[-1].relative_to("/home/alice").as_posix()
        page.goto(f"{hub.url}/user/alice/files/{rel}")
        score = page.locator("text=/Score: [0-9.]+ \\/ [0-9.]+/").first.inner_text()
        clock(f"alice reads her feedback: {score}")
        return score


def test_a_class_from_release_to_feedback_on_the_hub(hub, browser):
    start = time.monotonic()

    def clock(what: str) -> None:
        print(f"[{time.monotonic() - start:5.1f} s] {what}", flush=True)

    due = datetime.now(timezone.utc) + timedelta(days=7)
    for assignment in (ASSIGNMENT, HEAVIER):
        instructor_cli(hub, "-m", "nbgrader", "db", "assignment", "add", assignment,
                       f"--duedate={due:%Y-%m-%d %H:%M:%S} UTC")
        instructor_cli(hub, "-m", "nbgrader", "generate_assignment", assignment, "--force")
        instructor_cli(hub, "-m", "nbgrader", "release_assignment", assignment)
    clock("instructor released 00-setup and 03-feature-extraction to the exchange")

    alice_submits(browser, hub, clock)
    student_cli(hub, "bob", "fetch_assignment", ASSIGNMENT)
    student_cli(hub, "bob", "submit", ASSIGNMENT)
    passed = datetime.now(timezone.utc) - timedelta(seconds=1)
    instructor_cli(hub, "-m", "nbgrader", "db", "assignment", "add", ASSIGNMENT, f"--duedate={passed:%Y-%m-%d %H:%M:%S} UTC")
    carol_submits_a_full_answer(hub)
    clock("bob submitted the release unchanged; the due date passed; carol submitted")

    for student in STUDENTS:
        instructor_cli(hub, "-m", "nbgrader", "db", "student", "add", student, f"--first-name={student.title()}",
                       "--last-name=Student")
    instructor_cli(hub, "-m", "nbgrader", "collect", ASSIGNMENT)
    graded = instructor_cli(hub, "-m", "tlhelpers.instructor.grade", ASSIGNMENT, "--jobs", "2")
    assert "NOT GRADED" not in graded.stdout + graded.stderr, graded.stdout[-3000:] + graded.stderr[-3000:]
    clock("instructor collected and graded the three submissions, sandboxed")

    table = instructor_sees_scores(browser, hub, clock)
    assert set(STUDENTS) <= set(table), f"the Formgrader's students: {table}"
    overall = {s: float(table[s].split("/")[0]) for s in STUDENTS}
    assert overall["alice"] > overall["bob"] and overall["carol"] > overall["bob"], f"the Formgrader shows {table}"

    instructor_cli(hub, "-m", "nbgrader", "generate_feedback", ASSIGNMENT)
    instructor_cli(hub, "-m", "nbgrader", "release_feedback", ASSIGNMENT)
    score = alice_reads_her_feedback(browser, hub, clock)
    got, full = map(float, re.findall(r"[0-9.]+", score))
    assert got == full > 0, f"alice answered everything and validated, but her feedback says {score}"

    instructor_cli(hub, "-m", "nbgrader", "export", "--to", "grades.csv")
    exported = (hub.grader_course_dir / "grades.csv").read_text()
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(exported)) if r["assignment"] == ASSIGNMENT}
    clock(f"export: { {s: (r['raw_score'], r['late_submission_penalty'], r['score']) for s, r in rows.items()} }")
    assert set(rows) == set(STUDENTS), f"export lists {sorted(rows)}"
    assert float(rows["alice"]["score"]) == float(rows["alice"]["max_score"]) == full
    assert float(rows["bob"]["score"]) < float(rows["alice"]["score"]), "bob submitted the release unanswered"
    assert float(rows["alice"]["late_submission_penalty"] or 0) == 0 == float(rows["bob"]["late_submission_penalty"] or 0)
    carol = rows["carol"]
    assert float(carol["raw_score"]) == full and 0 < float(carol["late_submission_penalty"]) <= full, carol
    assert float(carol["score"]) == float(carol["raw_score"]) - float(carol["late_submission_penalty"]), carol


def test_load_driver_runs_each_students_notebook_in_their_own_server(hub, tmp_path):
    """The class-load benchmark's documented command, on a two-cell notebook for alice and bob."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import getpass, os\nwho = getpass.getuser()"),
        nbformat.v4.new_code_cell("assert who != 'bob', f'{who} runs this kernel, in {os.getcwd()}'")])
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    args = documented_args("tlhelpers.instructor.hub_load", {"--students": "alice,bob", "--notebook": str(path)})
    proc = subprocess.run([sys.executable, "-m", "tlhelpers.instructor.hub_load", *args, "--hub", hub.url,
                           "--state", str(hub.state), "--json", str(tmp_path / "load.json")],
                          capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 1, f"bob's notebook fails, so the command reports a failure:\n{proc.stdout}{proc.stderr}"
    result = json.loads((tmp_path / "load.json").read_text())
    runs = {r["user"]: r for r in result["students"]}
    assert runs["alice"]["error"] == "" and runs["alice"]["cells"] == 2, runs["alice"]
    assert runs["bob"]["error"].startswith("cell 1: AssertionError: bob runs this kernel, in /home/bob"), runs["bob"]
    assert all(r["peak_rss_mb"] > 20 and r["server_start_s"] > 0 for r in runs.values()), runs
    assert result["hub"]["peak_rss_mb"] > 20 and result["hub"]["cpu_s"] > 0, result["hub"]


def test_ctrl_c_stops_the_class_and_leaves_no_process(hub):
    import psutil

    uids = {hh.pwd.getpwnam(u).pw_uid for u in [*STUDENTS, INSTRUCTOR, GRADER]}
    started = time.monotonic()
    hub.exit_code = hub.stop()
    took = time.monotonic() - started
    assert hub.exit_code == 0, "\n".join(hub.output[-20:])
    port = hub.url.rsplit(":", 1)[1]

    def of_this_hub(cmdline: list[str]) -> bool:
        line = " ".join(cmdline)
        return str(hub.state) in line or ("configurable-http-proxy" in line and f"--port {port}" in line)

    left = [p.info for p in psutil.process_iter(["pid", "uids", "cmdline"])
            if (p.info["uids"] and p.info["uids"].real in uids) or of_this_hub(p.info["cmdline"] or [])]
    print(f"Ctrl-C to no process left: {took:.1f} s")
    assert not left, f"left running after Ctrl-C: {left}"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=2)
