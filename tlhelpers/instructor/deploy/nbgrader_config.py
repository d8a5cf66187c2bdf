"""nbgrader settings every user of a class hub gets: the course, the exchange, the validate policy.

Installed as the global nbgrader config (``/etc/jupyter/nbgrader_config.py``, or a folder on
``$JUPYTER_CONFIG_PATH``) by ``python -m tlhelpers.instructor.hub``, The Littlest JupyterHub and
Zero to JupyterHub alike. It reads the class from ``$TLH_CLASS_FILE`` (default
/etc/tlhelpers/class.json), as class_hub.py does.

A student's **Validate** must give the grader's verdict, so it runs the notebook under the
grading policy of the course's nbgrader_config.py: the same cell time limit, a dead kernel
failing only the cells that are left, and only errors (not stderr chatter, not a displayed
value) costing points. The grader's own nbgrader_config.py, in the course folder, is read after
this file and adds the rest of its policy.
"""
import json
import os

from nbgrader.preprocessors import CheckCellMetadata, ClearOutput

from tlhelpers.instructor.grading import CourseExecute, GradeOnErrorsOnly

with open(os.environ.get("TLH_CLASS_FILE", "/etc/tlhelpers/class.json"), encoding="utf-8") as _f:
    CLASS = json.load(_f)

c = get_config()  # noqa: F821  (given by nbgrader when it loads this file)

c.CourseDirectory.course_id = CLASS["course_id"]
c.Exchange.root = CLASS.get("exchange", "/srv/nbgrader/exchange")

c.Validator.preprocessors = [CheckCellMetadata, ClearOutput, CourseExecute, GradeOnErrorsOnly]
for _name, _value in CLASS.get("execute", {}).items():  # the grader's Execute settings, copied
    setattr(c.Execute, _name, _value)
