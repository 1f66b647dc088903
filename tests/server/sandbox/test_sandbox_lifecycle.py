"""Pause/resume, destroy, restart reaping and death with the service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runtools.server.domain.errors import SandboxNotFound, SandboxStateConflict
from runtools.server.sandbox import LocalSandboxDriver, ResourceLimits, SandboxSpec
from runtools.server.sandbox.identity import start_time

pytestmark = pytest.mark.anyio

COUNTER = (
    "sh -c 'i=0; while true; do i=$((i+1)); echo $i > /workspace/counter; sleep 0.05; done' "
    ">/dev/null 2>&1 &"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _mounts() -> set[str]:
    # Mount ids and the rest of the line; a leaked mount adds a line.
    return set(Path("/proc/self/mountinfo").read_text().splitlines())


async def _counter(driver: LocalSandboxDriver, sandbox: str) -> int:
    for _ in range(50):
        text = (await driver.read_file(sandbox, "counter")).decode().strip()
        if text:
            return int(text)
        await asyncio.sleep(0.01)  # caught between truncate and write
    raise AssertionError("counter stayed empty")


@pytest.mark.slow
async def test_pause_freezes_and_resume_continues(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.exec(sandbox, COUNTER)
    await asyncio.sleep(0.3)
    await driver.pause(sandbox)
    frozen_at = await _counter(driver, sandbox)
    await asyncio.sleep(0.5)
    assert await _counter(driver, sandbox) == frozen_at  # no progress while paused
    assert await driver.is_alive(sandbox)
    started = time.monotonic()
    with pytest.raises(SandboxStateConflict):
        await driver.exec(sandbox, "true")
    assert time.monotonic() - started < 1
    await driver.resume(sandbox)
    await asyncio.sleep(0.3)
    assert await _counter(driver, sandbox) > frozen_at
    r = await driver.exec(sandbox, "echo ok")
    assert r.stdout == "ok\n"


async def test_destroy_leaves_nothing_behind(
    driver: LocalSandboxDriver,
    tmp_path: Path,
    cgroup_dirs: Callable[[str], list[Path]],
    host_pids: Callable[[str], set[int]],
) -> None:
    mounts_before = _mounts()
    sandbox = "t-destroy"
    await driver.create(sandbox, SandboxSpec(resources=ResourceLimits(memory_mib=128)))
    await driver.exec(sandbox, "sleep 1000 >/dev/null 2>&1 & python3 -m http.server 8001 &")
    await driver.write_file(sandbox, "data.bin", b"x" * 4096)
    pids = host_pids(sandbox)
    assert len(pids) >= 5
    assert cgroup_dirs(sandbox)
    assert (tmp_path / "driver-state" / "sandboxes" / sandbox).is_dir()
    # Also paused: destroy must not be blocked by a frozen sandbox.
    await driver.pause(sandbox)

    await driver.destroy(sandbox)

    assert not [pid for pid in pids if _alive(pid)]
    assert cgroup_dirs(sandbox) == []
    assert _mounts() == mounts_before
    assert not (tmp_path / "driver-state" / "sandboxes" / sandbox).exists()
    assert os.listdir(tmp_path / "driver-state" / "uids") == []
    assert not await driver.is_alive(sandbox)
    with pytest.raises(SandboxNotFound):
        await driver.destroy(sandbox)
    with pytest.raises(SandboxNotFound):
        await driver.read_file(sandbox, "data.bin")


async def test_reap_orphans_after_restart(
    driver: LocalSandboxDriver,
    tmp_path: Path,
    cgroup_dirs: Callable[[str], list[Path]],
    host_pids: Callable[[str], set[int]],
) -> None:
    for name in ("t-keep", "t-orphan"):
        await driver.create(name, SandboxSpec())
    orphan_pids = host_pids("t-orphan")

    restarted = LocalSandboxDriver(tmp_path / "driver-state")
    assert await restarted.reap_orphans({"t-keep"}) == ["t-orphan"]

    assert not [pid for pid in orphan_pids if _alive(pid)]
    assert cgroup_dirs("t-orphan") == []
    assert await restarted.is_alive("t-keep")
    assert (await restarted.exec("t-keep", "echo still here")).stdout == "still here\n"

    # A known sandbox whose processes died is reported dead, and destroy cleans it.
    for pid in host_pids("t-keep"):
        # Killing the sandbox's PID 1 takes the rest with it: later pids may be gone.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not await restarted.is_alive("t-keep"):
            break
        await asyncio.sleep(0.02)
    assert not await restarted.is_alive("t-keep")
    with pytest.raises(SandboxStateConflict):
        await restarted.exec("t-keep", "true")
    await restarted.destroy("t-keep")
    assert cgroup_dirs("t-keep") == []


SERVICE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec

    async def main():
        driver = LocalSandboxDriver(Path(sys.argv[1]))
        await driver.create("t-service", SandboxSpec())
        await driver.exec("t-service", "sleep 1000 >/dev/null 2>&1 & echo started")
        print("ready", flush=True)
        await asyncio.sleep(1000)

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_a_sandbox_outlives_the_service_and_is_known_by_pid_start_time_and_cgroup(
    tmp_path: Path,
    cgroup_dirs: Callable[[str], list[Path]],
    host_pids: Callable[[str], set[int]],
) -> None:
    root = tmp_path / "service-state"
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVICE, str(root), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert service.stdout is not None
        line = await asyncio.wait_for(service.stdout.readline(), 20)
        assert line.strip() == b"ready", line
        pids = host_pids("t-service")
        assert len(pids) >= 4
        service.kill()
        await service.wait()
        await asyncio.sleep(0.5)
        assert all(_alive(pid) for pid in pids)  # nothing died with it
    finally:
        if service.returncode is None:
            service.kill()
            await service.wait()
    restarted = LocalSandboxDriver(root)
    try:
        assert await restarted.is_alive("t-service")
        result = await restarted.exec("t-service", "echo adopted")
        assert (result.stdout, result.exit_code) == ("adopted\n", 0)

        # A pid alone proves nothing: the same pid and start time outside the
        # sandbox's cgroup (a reused pid, a forged record) is not the sandbox.
        state_file = root / "sandboxes" / "t-service" / "state.json"
        state = json.loads(state_file.read_text())
        state["init"] = {"pid": os.getpid(), "start_time": start_time(os.getpid())}
        kept = state_file.read_text()
        state_file.write_text(json.dumps(state))
        assert not await restarted.is_alive("t-service")
        state_file.write_text(kept)
        assert await restarted.is_alive("t-service")
    finally:
        assert await restarted.reap_orphans(set()) == ["t-service"]
    for _ in range(200):
        if not [pid for pid in pids if _alive(pid)]:
            break
        await asyncio.sleep(0.025)
    assert not [pid for pid in pids if _alive(pid)]
    assert cgroup_dirs("t-service") == []
