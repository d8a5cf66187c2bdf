"""The ``python -m tlhelpers...`` commands that README.md and docs/*.md show, read from the documents."""
from __future__ import annotations

import re

from .paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"python -m (tlhelpers[\w.]*)([^`#\n|]*)")


def documented() -> list[str]:
    """Return every distinct ``python -m tlhelpers...`` command shown in bash blocks or inline code.

    A command continued with a trailing backslash is read as one line.
    """
    found = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        spans = re.findall(r"```bash\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
        for span in spans:
            for line in span.replace("\\\n", " ").splitlines():
                match = COMMAND.search(line)
                if match:
                    found.append(" ".join(f"{match.group(1)}{match.group(2)}".split()))
    return sorted(set(found))
