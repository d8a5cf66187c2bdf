"""The class-hub command's refusals and the late-submission policy, without starting a hub."""
from __future__ import annotations

import subprocess
import sys

import pytest

from support.paths import REPO
from tlhelpers.instructor import hub as class_hub
from tlhelpers.instructor.late import PenaltyPerDayLate


def a_class(**changes) -> class_hub.ClassHub:
    settings = dict(course_id="transfer-learning", students=["alice"], instructors=["instructor"], course_repo=REPO)
    return class_hub.ClassHub(**{**settings, **changes})


@pytest.mark.parametrize("text, bad", [("alice,Bob", "'Bob'"), ("alice,1x", "'1x'"), ("a b", "'a b'"),
                                       ("alice," + "x" * 40, "'xxxx")])
def test_user_names_that_unix_or_the_hub_would_refuse_are_named(text, bad):
    with pytest.raises(class_hub.HubError, match=bad):
        class_hub.parse_names(text, "students")


def test_names_are_split_and_a_repeat_is_refused():
    assert class_hub.parse_names(" alice, bob ,,carol", "students") == ["alice", "bob", "carol"]
    with pytest.raises(class_hub.HubError, match="twice"):
        class_hub.parse_names("alice,alice", "students")


def test_without_root_the_command_says_to_run_it_as_root(monkeypatch):
    monkeypatch.setattr(class_hub.os, "geteuid", lambda: 1000)
    with pytest.raises(class_hub.HubError, match="run this as root"):
        class_hub.check_can_start(a_class(), allow_remote=False)


def test_without_the_proxy_the_command_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(class_hub.os, "geteuid", lambda: 0)
    monkeypatch.setattr(class_hub.shutil, "which", lambda name: None)
    with pytest.raises(class_hub.HubError, match="npm install -g configurable-http-proxy"):
        class_hub.check_can_start(a_class(), allow_remote=False)


@pytest.mark.parametrize("changes, message", [
    ({"ip": "0.0.0.0"}, "plain HTTP to the network"),
    ({"ip": "class.example.org"}, "plain HTTP to the network"),
    ({"students": ["instructor"]}, "both students and instructors"),
    ({"students": [], "instructors": []}, "at least one student"),
])
def test_an_open_or_muddled_class_is_refused(monkeypatch, changes, message):
    monkeypatch.setattr(class_hub.os, "geteuid", lambda: 0)
    monkeypatch.setattr(class_hub.shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(class_hub.HubError, match=message):
        class_hub.check_can_start(a_class(**changes), allow_remote=False)


def test_a_python_the_users_cannot_run_is_refused_with_the_way_out(monkeypatch):
    unreachable = subprocess.CompletedProcess([], 1, "", "PermissionError: [Errno 13] Permission denied: '/root/x'\n")
    monkeypatch.setattr(class_hub.subprocess, "run", lambda *a, **k: unreachable)
    with pytest.raises(class_hub.HubError) as err:
        class_hub.check_python_for_users("/root/x/bin/python")
    assert "Permission denied" in str(err.value) and "python3 -m venv /opt/tlh-class" in str(err.value)


def test_a_folder_that_is_not_the_course_is_refused(tmp_path):
    with pytest.raises(class_hub.HubError, match="not the course repository"):
        class_hub.read_course(tmp_path)


def test_the_command_reads_the_course_id_and_the_graders_cell_limit():
    course_id, execute = class_hub.read_course(REPO)
    assert course_id == "transfer-learning" and execute["timeout"] > 0 and execute["interrupt_on_timeout"] is True


def test_the_command_exits_2_with_one_line_saying_what_is_wrong():
    proc = subprocess.run([sys.executable, "-m", "tlhelpers.instructor.hub", "--students", "Alice"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --students: 'Alice' not valid"), proc.stderr


@pytest.mark.parametrize("seconds_late, penalty", [(0, None), (-5, None), (1, 0.6), (86_400, 0.6),
                                                   (86_401, 1.2), (40 * 86_400, 6.0)])
def test_late_work_loses_ten_percent_per_started_day(seconds_late, penalty):
    assert PenaltyPerDayLate().late_submission_penalty("ada", 6.0, seconds_late) == pytest.approx(penalty)
