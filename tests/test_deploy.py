"""The class hub's settings: the one command, The Littlest JupyterHub and Zero to JupyterHub agree.

The command (tlhelpers.instructor.hub) and both production deployments load the same two files,
deploy/class_hub.py (groups, roles, the Formgrader) and deploy/nbgrader_config.py (the users'
nbgrader settings), each with its own class.json. These tests load them as JupyterHub and nbgrader
would (traitlets' config loader) and compare what comes out.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from traitlets.config.loader import PyFileConfigLoader

from support.paths import REPO
from tlhelpers.instructor import hub as class_hub
from tlhelpers.instructor.grading import CourseExecute, GradeOnErrorsOnly
from tlhelpers.instructor.late import PenaltyPerDayLate

DEPLOY = class_hub.DEPLOY


def load(path: Path, class_file: Path, monkeypatch):
    """Load a config file as JupyterHub or nbgrader does, with ``class_file`` as the class."""
    monkeypatch.setenv("TLH_CLASS_FILE", str(class_file))
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def command_settings(tmp_path) -> tuple[class_hub.ClassHub, Path]:
    """What the one command writes for alice, bob and carol, without starting anything."""
    course_id, execute = class_hub.read_course(REPO)
    hub = class_hub.ClassHub(course_id=course_id, students=["alice", "bob", "carol"], instructors=["instructor"],
                             course_repo=REPO, state=tmp_path / "state", exchange=tmp_path / "exchange",
                             python="/opt/tlh-class-env/bin/python", execute=execute)
    (hub.state / "jupyter").mkdir(parents=True)
    (hub.state / "hub").mkdir()
    return hub, class_hub.write_settings(hub)


def shape(config) -> dict:
    """The class as the hub sees it: who may log in, the groups, the roles, the Formgrader."""
    roles = [r for r in config.JupyterHub.load_roles if r["name"] != "class-admin"]
    services = [{k: s[k] for k in ("name", "user", "oauth_no_confirm")} | {"command": s["command"][1:]}
                for s in config.JupyterHub.services if s["name"] != "class-admin"]
    return {"allowed": sorted(config.Authenticator.allowed_users), "groups": config.JupyterHub.load_groups,
            "roles": roles, "services": services, "default_url": config.Spawner.default_url,
            # JUPYTER_CONFIG_PATH: on one machine the users' nbgrader config sits in the class's state
            # folder; TLJH puts it in the users' environment (etc/jupyter), where Jupyter looks anyway.
            "environment": sorted(set(config.Spawner.environment.get_value({})) - {"JUPYTER_CONFIG_PATH"})}


def test_the_littlest_jupyterhub_runs_what_the_one_command_runs(tmp_path, monkeypatch):
    hub, hub_config = command_settings(tmp_path)
    ours = load(hub_config, hub.state / "class.json", monkeypatch)
    tljh = load(DEPLOY / "class_hub.py", DEPLOY / "tljh" / "class.json", monkeypatch)
    assert shape(tljh) == shape(ours)
    assert set(json.loads((DEPLOY / "tljh" / "class.json").read_text())) == set(hub.class_settings())
    install = (DEPLOY / "tljh" / "install.sh").read_text()
    for shared in ("class_hub.py", "nbgrader_config.py", "tljh/class.json", "tljh/config.yaml"):
        assert f"$here/{shared} " in install, f"install.sh does not install deploy/{shared}"
    config = yaml.safe_load((DEPLOY / "tljh" / "config.yaml").read_text())
    assert set(config["users"]["admin"]) <= set(hub.instructors) and config["user_environment"]["default_app"] == "jupyterlab"


def test_the_one_command_gives_the_hub_the_class_and_a_private_token(tmp_path, monkeypatch):
    hub, hub_config = command_settings(tmp_path)
    config = load(hub_config, hub.state / "class.json", monkeypatch)
    assert config.JupyterHub.ip == "127.0.0.1" and config.JupyterHub.authenticator_class == "pam"
    assert (config.JupyterHub.port, config.JupyterHub.hub_port) == (8000, 8081), "JupyterHub's defaults at port 8000"
    assert config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert config.Spawner.cmd == [hub.python, "-m", "jupyterhub.singleuser"]
    assert config.JupyterHub.load_groups["formgrade-transfer-learning"]["users"] == ["instructor"]
    service = next(s for s in config.JupyterHub.services if s["name"] == "transfer-learning")
    assert service["user"] == "grader-transfer-learning" and service["environment"]["PATH"].startswith("/opt/tlh-class-env/bin:")
    assert "frame-ancestors 'self'" in service["command"][-1], "the Formgrader tab frames its own server"
    token = hub.state / "hub" / "admin-token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64


def test_zero_to_jupyterhub_mounts_the_shared_settings_where_they_are_read():
    values = yaml.safe_load((DEPLOY / "z2jh" / "values.yaml").read_text())
    settings = json.loads((DEPLOY / "z2jh" / "class.json").read_text())
    hub_files = values["hub"]["extraFiles"]
    assert hub_files["class-hub"]["mountPath"].startswith("/usr/local/etc/jupyterhub/jupyterhub_config.d/")
    assert hub_files["class-json"]["mountPath"] == settings["environment"]["TLH_CLASS_FILE"]
    user_files = values["singleuser"]["extraFiles"]
    assert user_files["class-json"]["mountPath"] == values["singleuser"]["extraEnv"]["TLH_CLASS_FILE"]
    assert user_files["nbgrader-config"]["mountPath"] == "/etc/jupyter/nbgrader_config.py"
    mounts = {m["name"]: m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    assert mounts["exchange"] == settings["exchange"]
    claim = yaml.safe_load((DEPLOY / "z2jh" / "exchange.yaml").read_text())
    volumes = {v["name"]: v for v in values["singleuser"]["storage"]["extraVolumes"]}
    assert volumes["exchange"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every user pod mounts the exchange"
    image = f"{values['singleuser']['image']['name']}:{values['singleuser']['image']['tag']}"
    cluster = yaml.safe_load((DEPLOY / "z2jh" / "dask-grading.yaml").read_text())
    pods = [cluster["spec"]["worker"]["spec"], cluster["spec"]["scheduler"]["spec"]]
    assert {c["image"] for pod in pods for c in pod["containers"]} == {image}, "graders run the students' image"
    assert set(settings) == set(json.loads((DEPLOY / "tljh" / "class.json").read_text()))


def test_on_kubernetes_instructors_open_the_grader_accounts_server(tmp_path, monkeypatch):
    config = load(DEPLOY / "class_hub.py", DEPLOY / "z2jh" / "class.json", monkeypatch)
    graders = next(r for r in config.JupyterHub.load_roles if r["name"] == "formgrade-transfer-learning")
    assert "access:servers!user=grader-transfer-learning" in graders["scopes"]
    assert "services" not in config.JupyterHub and "grader-transfer-learning" in config.Authenticator.allowed_users


@pytest.mark.parametrize("class_file", ["command", "tljh", "z2jh"])
def test_students_validate_under_the_graders_execution_policy(class_file, tmp_path, monkeypatch):
    if class_file == "command":
        hub, _ = command_settings(tmp_path)
        path = hub.state / "class.json"
    else:
        path = DEPLOY / class_file / "class.json"
    users = load(DEPLOY / "nbgrader_config.py", path, monkeypatch)
    grader = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    assert users.CourseDirectory.course_id == grader.CourseDirectory.course_id
    assert CourseExecute in users.Validator.preprocessors and GradeOnErrorsOnly in users.Validator.preprocessors
    for key in class_hub.EXECUTE_KEYS:
        assert users.Execute[key] == grader.Execute[key], f"Validate and grading differ on Execute.{key}"
    assert grader.AssignLatePenalties.plugin_class is PenaltyPerDayLate
