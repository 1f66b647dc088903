"""A sandbox at its process limit: a clear refusal, and a way back without losing files.

The sandbox is filled deterministically (``support.process_filler``: every
slot taken and held, nothing exits), so the assertions do not depend on how
fast a loaded machine runs a fork bomb.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from runtools.server.domain.errors import SandboxProcessLimit, SandboxStateConflict
from runtools.server.sandbox import LocalSandboxDriver, ResourceLimits
from runtools.server.sandbox import local as local_driver
from support.process_filler import FILL_COMMAND

pytestmark = pytest.mark.anyio

MakeSandbox = Callable[..., Awaitable[str]]
LIMIT = 48


async def fill(driver: LocalSandboxDriver, sandbox: str) -> None:
    r = await driver.exec(sandbox, FILL_COMMAND)
    assert r.exit_code == 0, r.stderr
    state = driver._state(sandbox)
    deadline = time.monotonic() + 60
    while True:
        current, limit = state.cgroup.process_count()
        if limit is not None and current >= limit:
            return
        assert time.monotonic() < deadline, f"sandbox never filled up ({current}/{limit})"
        await asyncio.sleep(0.05)


@pytest.fixture
async def full_sandbox(driver: LocalSandboxDriver, make_sandbox: MakeSandbox) -> str:
    sandbox = await make_sandbox(ResourceLimits(vcpus=1, memory_mib=256, disk_mib=16, pids=LIMIT))
    await driver.write_file(sandbox, "notes.txt", b"kept\n")
    await fill(driver, sandbox)
    return sandbox


async def test_a_command_into_a_full_sandbox_is_refused_naming_the_limit(
    driver: LocalSandboxDriver, full_sandbox: str
) -> None:
    with pytest.raises(SandboxProcessLimit, match=rf"limit of {LIMIT} processes") as caught:
        await driver.exec(full_sandbox, "echo hi")
    assert caught.value.limit == LIMIT
    assert caught.value.status_code == 409
    assert caught.value.code == "process_limit_reached"
    assert "kill its processes" in caught.value.message
    with pytest.raises(SandboxProcessLimit):
        driver.exec_stream(full_sandbox, "echo hi")


async def test_a_sandbox_that_fills_up_while_a_command_enters_is_refused_the_same_way(
    driver: LocalSandboxDriver, full_sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the sandbox filled up between the check and nsenter's fork.
    monkeypatch.setattr(local_driver, "ENTER_PROCESSES", 0)
    with pytest.raises(SandboxProcessLimit, match=rf"limit of {LIMIT} processes"):
        await driver.exec(full_sandbox, "echo hi")


async def test_killing_the_processes_makes_the_sandbox_usable_and_keeps_its_files(
    driver: LocalSandboxDriver, full_sandbox: str, host_pids: Callable[[str], set[int]]
) -> None:
    await driver.kill_processes(full_sandbox)
    assert len(host_pids(full_sandbox)) <= 3  # bwrap, PID 1, init
    r = await driver.exec(full_sandbox, "cat notes.txt; ps -e -o comm= | sort | uniq -c")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("kept\n")
    assert "python3" not in r.stdout
    assert await driver.is_alive(full_sandbox)


async def test_kill_ends_a_running_command_as_killed(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    await driver.exec(sandbox, "sleep 300 >/dev/null 2>&1 &")
    running = asyncio.create_task(driver.exec(sandbox, "sleep 300", timeout_ms=120_000))
    state = driver._state(sandbox)
    deadline = time.monotonic() + 30
    while state.cgroup.process_count()[0] < 6:  # bwrap, PID 1, init, sleep, nsenter, sleep
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await driver.kill_processes(sandbox)
    result = await asyncio.wait_for(running, 30)
    assert result.exit_code == 137
    assert not result.timed_out
    r = await driver.exec(sandbox, "ps -e -o args=")
    assert "sleep 300" not in r.stdout.splitlines()
    assert "/usr/bin/sleep infinity" in r.stdout.splitlines()  # the init stays


async def test_a_paused_sandbox_is_not_killed(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.pause(sandbox)
    with pytest.raises(SandboxStateConflict, match="paused"):
        await driver.kill_processes(sandbox)
    await driver.resume(sandbox)
