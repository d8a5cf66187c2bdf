"""The tests' own shape: helpers live in tests/support/, test modules never import each other."""
from __future__ import annotations

import ast
import re

from support.paths import REPO

TESTS = REPO / "tests"


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = {p.stem for p in TESTS.glob("*.py")}
    for path in sorted(TESTS.rglob("*.py")):
        wrong = sorted(_imports(path) & modules)
        assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: shared code belongs in tests/support/"


def test_the_repository_root_is_defined_once():
    pattern = re.compile(r"^(REPO|ROOT)\s*=", re.M)
    defined = [str(p.relative_to(REPO)) for p in sorted(TESTS.rglob("*.py")) if pattern.search(p.read_text("utf-8"))]
    assert defined == ["tests/support/paths.py"], defined
