"""The cgroup package's pure parts, on text and on directories made to look like cgroupfs.

These need no root: they never touch the real hierarchies. How the real
ones behave (this host's v1, limits enforced, processes killed) is for the
driver's tests one directory up.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _require_root() -> None:
    """Overrides the driver tests' root check: nothing here needs it."""
