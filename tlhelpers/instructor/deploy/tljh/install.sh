#!/usr/bin/env bash
# The course on The Littlest JupyterHub, on a fresh Ubuntu server, as root, from a clone of the
# course repository (run it from the repository's root after editing class.json's students):
#   curl -L https://tljh.jupyter.org/bootstrap.py | sudo python3 - --admin instructor
#   sudo bash tlhelpers/instructor/deploy/tljh/install.sh
set -euo pipefail
here=tlhelpers/instructor/deploy
course=$(python3 -c "import json; print(json.load(open('$here/tljh/class.json'))['course_id'])")
grader=grader-$course

# The users' environment: the course, nbgrader and its lab extensions; bubblewrap for grading.
/opt/tljh/user/bin/pip install ".[instructor]"
apt-get install -y bubblewrap

# The class: who is in it, and the settings every deployment shares.
install -D -m 644 $here/tljh/class.json /etc/tlhelpers/class.json
install -D -m 644 $here/class_hub.py /opt/tljh/config/jupyterhub_config.d/tlh_class_hub.py
install -D -m 644 $here/nbgrader_config.py /opt/tljh/user/etc/jupyter/nbgrader_config.py
install -D -m 644 $here/tljh/config.yaml /opt/tljh/config/config.yaml

# The exchange, and the grader account that holds the course and runs the Formgrader service.
install -d -m 1777 /srv/nbgrader/exchange
id "$grader" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$grader"
home=$(getent passwd "$grader" | cut -d: -f6)
if [ ! -e "$home/$course/nbgrader_config.py" ]; then
  mkdir -p "$home/$course" && cp -r nbgrader_config.py solutions course "$home/$course/"
  chown -R "$grader:$grader" "$home/$course"
fi
tljh-config reload
