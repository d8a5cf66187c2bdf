"""The README's two commands are the ones people and CI actually run."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    """.ci/run must call the README's test command verbatim, so CI tests what users run."""
    blocks = _bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    test_commands = [b for b in blocks if "pytest" in b]
    assert len(test_commands) == 1, f"expected one README command that runs pytest, found {test_commands}"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_commands[0] in ci_lines, f".ci/run does not run the README's test command {test_commands[0]!r}"


def test_readme_course_command_opens_the_released_notebooks():
    """The main command installs the package and starts JupyterLab on course/."""
    blocks = _bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    course_commands = [b for b in blocks if "jupyter lab" in b]
    assert len(course_commands) == 1, f"expected one README command that starts JupyterLab, found {course_commands}"
    assert "pip install" in course_commands[0] and "course" in course_commands[0]
