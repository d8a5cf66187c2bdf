"""JupyterHub settings for one nbgrader class: groups, roles, the Formgrader, the students' servers.

One file for every deployment, so a class behaves the same wherever it runs:
- ``python -m tlhelpers.instructor.hub`` loads it into the hub it starts on one machine;
- The Littlest JupyterHub loads it from ``/opt/tljh/config/jupyterhub_config.d/``;
- Zero to JupyterHub loads it from ``/usr/local/etc/jupyterhub/jupyterhub_config.d/``
  (``hub.extraFiles`` in z2jh/values.yaml).

It reads the class from a JSON file, ``$TLH_CLASS_FILE`` (default /etc/tlhelpers/class.json):
``course_id``, ``students``, ``instructors``, ``grader`` (the Unix account that holds the course
and runs the Formgrader), ``grader_course_dir``, ``python`` (the users' environment),
``environment`` (variables every server gets), ``formgrader``: ``"service"`` (a hub-managed
service on this machine, nbgrader's "Using nbgrader with JupyterHub") or ``"shared-server"``
(the grader account's own server, which instructors may open: Kubernetes, where the hub cannot
start processes as other users), and ``service_port``.

It uses nothing but ``c`` and the standard library: the hub's own environment needs no course
packages. Group names follow nbgrader's rule: ``formgrade-<course>`` for the graders,
``nbgrader-<course>`` for the students.
"""
import json
import os

CLASS_FILE = os.environ.get("TLH_CLASS_FILE", "/etc/tlhelpers/class.json")
with open(CLASS_FILE, encoding="utf-8") as _f:
    CLASS = json.load(_f)

_course = CLASS["course_id"]
_graders = f"formgrade-{_course}"
_students = f"nbgrader-{_course}"
_service_mode = CLASS.get("formgrader", "service") == "service"

c = get_config()  # noqa: F821  (given by JupyterHub when it loads this file)

c.Authenticator.allowed_users = set(CLASS["students"]) | set(CLASS["instructors"])
c.JupyterHub.load_groups = {
    _graders: {"users": sorted(CLASS["instructors"])},
    _students: {"users": sorted(CLASS["students"])},
}
# The Formgrader is reached through the hub, so its users need access to it (JupyterHub >= 2 has
# no implicit access), and nbgrader's course list asks the hub which courses a user may see.
_grader_access = (["access:services!service=" + _course, "read:services!service=" + _course]
                  if _service_mode else
                  ["access:servers!user=" + CLASS["grader"], "read:users:name!user=" + CLASS["grader"]])
c.JupyterHub.load_roles = [
    {"name": _graders, "groups": [_graders], "scopes": ["list:services", *_grader_access]},
    {"name": _students, "groups": [_students], "scopes": ["list:services", "read:services!service=" + _course]},
    # A server's token may do what its owner may (the course list extension asks the hub).
    {"name": "server", "scopes": ["inherit"]},
]
c.Spawner.default_url = "/lab"
# Many kernels share the cores: one thread each. CLASS["environment"] tells the users' servers where
# the class's settings are (and, on one machine, which Python's commands come first on the PATH).
_environment = {"TLH_THREADS": "1", "OMP_NUM_THREADS": "1", **CLASS.get("environment", {})}
c.Spawner.environment.update(_environment)  # added to what the deployment already sets

# JupyterHub >= 4.1 forbids framing single-user pages; the Formgrader tab frames its own server's
# /formgrader, so that server allows frames from itself (nbgrader's JupyterHub demos do the same).
_frame_self = '--ServerApp.tornado_settings={"headers": {"Content-Security-Policy": "frame-ancestors \'self\'"}}'
if _service_mode:
    c.JupyterHub.services = [{
        "name": _course,
        "url": f"http://127.0.0.1:{CLASS.get('service_port', 9999)}",
        "command": [CLASS["python"], "-m", "jupyterhub.singleuser", _frame_self],
        "user": CLASS["grader"],
        "cwd": CLASS["grader_course_dir"],
        "environment": {"JUPYTERHUB_DEFAULT_URL": "/lab", **_environment},
        "oauth_no_confirm": True,  # the course's own service: no "Authorize access" page for instructors
    }]
else:
    c.Authenticator.allowed_users.add(CLASS["grader"])
    c.Spawner.args = [_frame_self]
