"""The README's two commands are the ones people and CI actually run."""
import re

from support.paths import REPO


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    """.ci/run must call the README's test command verbatim, so CI tests what users run."""
    blocks = _bash_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    # The test command sets up and runs everything; the fast tier (no install, "not slow") is not it.
    test_commands = [b for b in blocks if "pytest" in b and "pip install" in b]
    assert len(test_commands) == 1, f"expected one README command that installs and runs pytest, found {test_commands}"
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_commands[0] in ci_lines, f".ci/run does not run the README's test command {test_commands[0]!r}"


def test_readme_course_command_opens_the_released_notebooks():
    """The main command installs the package and starts JupyterLab on course/."""
    blocks = _bash_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    course_commands = [b for b in blocks if "jupyter lab" in b]
    assert len(course_commands) == 1, f"expected one README command that starts JupyterLab, found {course_commands}"
    assert "pip install" in course_commands[0] and "course" in course_commands[0]


def test_readme_documents_a_fast_tier_that_skips_the_slow_tests():
    """The fast tier is a real pytest call that deselects what is marked slow."""
    blocks = _bash_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    fast = [b for b in blocks if "pytest" in b and "pip install" not in b]
    assert len(fast) == 1 and '-m "not slow"' in fast[0], f"expected one fast-tier command, found {fast}"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"slow:' in pyproject, "the slow marker must be registered, or -m 'not slow' deselects nothing"
