"""Reading and writing cgroupfs control files, and walking a cgroup's subtree.

The few file operations every part of the package shares. Nothing here
knows a control file's name or meaning; that is the versions' business
(``v1``, ``v2``) and the hierarchy's (``hierarchy``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["read", "subtree", "write"]


def write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def subtree(top: Path) -> Iterator[Path]:
    """``top`` and every cgroup below it, deepest first (the order rmdir needs)."""
    try:
        children = [p for p in top.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return
    for child in children:
        yield from subtree(child)
    yield top
