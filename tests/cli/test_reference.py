"""The CLI reference in the docs is the CLI's own --help, and every command has examples."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_reference_matches_the_help_text() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli-reference"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_command_shows_an_example() -> None:
    text = (ROOT / "docs" / "cli-reference.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    leaves = [s for s in sections if "Commands ─" not in s]
    assert leaves
    missing = [s.splitlines()[0] for s in leaves if "Example" not in s]
    assert not missing, f"commands without an example in --help: {missing}"
