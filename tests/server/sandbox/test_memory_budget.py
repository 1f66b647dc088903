"""The node's default sandbox memory budget: what the service may use, not just the host's RAM."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from runtools.server.runtime import sandbox_memory_budget
from runtools.server.sandbox.cgroups import own_memory_limit
from runtools.server.settings import Settings

HOST_MIB = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)


def test_the_default_is_three_quarters_of_what_the_service_may_use() -> None:
    limit = own_memory_limit()
    usable = min(HOST_MIB, (limit or HOST_MIB * 1024 * 1024) // (1024 * 1024))
    assert sandbox_memory_budget(Settings(_env_file=None)) == usable * 3 // 4


def test_a_budget_beyond_the_machine_is_kept_but_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(_env_file=None, sandbox_memory_budget_mib=HOST_MIB * 10)
    with caplog.at_level(logging.WARNING, logger="runtools.runtime"):
        assert sandbox_memory_budget(settings) == HOST_MIB * 10
    assert "RUNTOOLS_SANDBOX_MEMORY_BUDGET_MIB" in caplog.text
    caplog.clear()
    within = Settings(_env_file=None, sandbox_memory_budget_mib=1024)
    with caplog.at_level(logging.WARNING, logger="runtools.runtime"):
        assert sandbox_memory_budget(within) == 1024
    assert caplog.text == ""


def _own_memory_cgroup() -> tuple[Path, str] | None:
    """This process's memory cgroup directory and its limit file's name."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    v1 = Path("/sys/fs/cgroup/memory") / own.get("memory", "/").lstrip("/")
    if "memory" in own and (v1 / "memory.limit_in_bytes").exists():
        return v1, "memory.limit_in_bytes"
    v2 = Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/")
    if (v2 / "cgroup.controllers").exists() and "memory" in (v2 / "cgroup.controllers").read_text():
        return v2, "memory.max"
    return None


def test_a_limited_cgroup_is_seen_from_inside_it() -> None:
    found = _own_memory_cgroup()
    if os.geteuid() != 0 or found is None:
        pytest.skip("needs root and a memory cgroup of our own to create a child in")
    parent, limit_file = found
    child = parent / f"runtools-test-{secrets.token_hex(4)}"
    child.mkdir()
    try:
        (child / limit_file).write_text(str(512 * 1024 * 1024))
        script = "from runtools.server.sandbox.cgroups import own_memory_limit as f; print(f())"
        joined = subprocess.run(
            ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(child),
             sys.executable, "-c", script],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert joined.stdout.strip() == str(512 * 1024 * 1024), joined.stderr
    finally:
        child.rmdir()
