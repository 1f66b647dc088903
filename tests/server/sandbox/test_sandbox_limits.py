"""Resource limits: processes, memory, disk, CPU; and where the cgroups live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from runtools.server.domain.errors import SandboxFileTooLarge, SandboxStateConflict
from runtools.server.sandbox import DEFAULT_TEMPLATE, LocalSandboxDriver, ResourceLimits
from runtools.server.sandbox.oom import COMMAND_SCORE

from .conftest import TINY

pytestmark = pytest.mark.anyio
#: The limits hold on a sandbox of the host's template and of an imported one.
ON_EVERY_KIND_OF_TEMPLATE = pytest.mark.parametrize(
    "template", [DEFAULT_TEMPLATE, TINY], ids=["host-template", "imported-template"]
)

MakeSandbox = Callable[..., Awaitable[str]]


def _host_round_trip_s() -> float:
    started = time.monotonic()
    Path("/proc/self/stat").read_text()
    time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.slow
@ON_EVERY_KIND_OF_TEMPLATE
async def test_fork_bomb_is_contained(
    driver: LocalSandboxDriver,
    make_sandbox: MakeSandbox,
    host_pids: Callable[[str], set[int]],
    cgroup_dirs: Callable[[str], list[Path]],
    template: str,
) -> None:
    limits = ResourceLimits(vcpus=1, memory_mib=256, disk_mib=16, pids=64)
    sandbox = await make_sandbox(limits, template=template)
    bomb = asyncio.create_task(
        driver.exec(sandbox, "b() { b | b & }; b; sleep 100", timeout_ms=3000)
    )
    # The pids controller's own count is one atomic read; a union of process
    # lists read across hierarchies at different instants would overcount.
    counters = [d / "pids.current" for d in cgroup_dirs(sandbox) if (d / "pids.current").exists()]
    assert counters, "the sandbox has no pids cgroup"
    peak = 0
    worst_latency = 0.0
    while not bomb.done():
        peak = max(peak, int(counters[0].read_text()))
        worst_latency = max(worst_latency, _host_round_trip_s())
        await asyncio.sleep(0.05)
    r = bomb.result()
    assert r.timed_out
    assert "fork" in r.stderr.lower()  # the limit was hit, not merely approached
    assert peak <= 64
    assert worst_latency < 1.0
    # Everything the bomb started is gone and the sandbox works again.
    assert len(host_pids(sandbox)) <= 3  # bwrap, PID 1, init
    r = await driver.exec(sandbox, "echo ok")
    assert r.stdout == "ok\n"


@ON_EVERY_KIND_OF_TEMPLATE
async def test_memory_hog_is_killed(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, template: str
) -> None:
    limits = ResourceLimits(vcpus=1, memory_mib=64, disk_mib=16, pids=64)
    sandbox = await make_sandbox(limits, template=template)
    r = await driver.exec(
        sandbox,
        "python3 -c \"x = b'a' * (512 * 1024 * 1024); print('survived')\"",
        timeout_ms=20_000,
    )
    assert "survived" not in r.stdout
    assert r.exit_code in (137, 1), r  # OOM-killed (or MemoryError)
    assert await driver.is_alive(sandbox)
    assert (await driver.exec(sandbox, "echo ok")).stdout == "ok\n"


async def test_disk_quota(driver: LocalSandboxDriver, make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(ResourceLimits(vcpus=1, memory_mib=256, disk_mib=8, pids=64))
    r = await driver.exec(
        sandbox, "head -c 16M /dev/zero > /workspace/big; echo $?; stat -c %s /workspace/big"
    )
    status, size = r.stdout.split()
    assert status != "0"
    assert "No space left" in r.stderr
    assert int(size) <= 8 * 1024 * 1024


@pytest.mark.slow
async def test_cpu_quota(driver: LocalSandboxDriver, make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(ResourceLimits(vcpus=0.25, memory_mib=256, disk_mib=8, pids=64))
    r = await driver.exec(
        sandbox,
        'python3 -c "import time\n'
        "end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end: pass\n"
        'print(time.process_time())"',
    )
    assert r.exit_code == 0, r.stderr
    assert float(r.stdout) < 0.5  # ~0.25 s of CPU in 1 s of wall time


def _own_cgroup_dirs() -> list[Path]:
    """Directories of this process's own cgroups, in every mounted hierarchy."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    dirs = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, options = right.split()[0], right.split()[2].split(",")
        mountpoint = left.split()[4]
        if fstype == "cgroup2" and "" in own:
            dirs.append(Path(mountpoint) / own[""].lstrip("/"))
        elif fstype == "cgroup":
            for name in options:
                if name in own:
                    dirs.append(Path(mountpoint) / own[name].lstrip("/"))
    return dirs


async def test_cgroups_live_beneath_the_service_cgroup(
    sandbox: str, cgroup_dirs: Callable[[str], list[Path]]
) -> None:
    found = cgroup_dirs(sandbox)
    assert found
    own = _own_cgroup_dirs()
    for d in found:
        parents = [o for o in own if o in d.parents]
        assert parents, f"{d} is not beneath the service's own cgroup"
        assert d.parent.parent.name == "runtools-sandboxes"
        assert d.parent.parent.parent in parents  # never at a hierarchy root


def _memory_charged(cgroup_dirs: list[Path]) -> int:
    """Bytes charged to the sandbox's memory cgroup (v1 or v2)."""
    for d in cgroup_dirs:
        for name in ("memory.usage_in_bytes", "memory.current"):
            if (d / name).exists():
                return int((d / name).read_text())
    raise AssertionError("the sandbox has no memory cgroup")


async def test_uploads_to_memory_count_against_it_and_uploads_to_disk_do_not(
    driver: LocalSandboxDriver,
    make_sandbox: MakeSandbox,
    cgroup_dirs: Callable[[str], list[Path]],
) -> None:
    # /tmp is RAM-backed: a file put there through the file API must be charged
    # to the sandbox, as a command's writes are, or a tenant could hold host
    # memory beyond its limit. /workspace and /home/user are its disk: written
    # by the sandbox too (its page cache is the sandbox's), but bounded by the
    # disk alone, so more than its memory fits.
    sandbox = await make_sandbox(ResourceLimits(vcpus=1, memory_mib=48, disk_mib=128, pids=64))
    chunk = b"x" * (20 * 1024 * 1024)
    await driver.write_file(sandbox, "/tmp/a", chunk)
    assert _memory_charged(cgroup_dirs(sandbox)) >= len(chunk)
    await driver.write_file(sandbox, "/tmp/b", chunk)
    with pytest.raises(SandboxFileTooLarge):
        await driver.write_file(sandbox, "/tmp/c", chunk)  # past 48 MiB in all
    # The refusal cost the sandbox nothing: no half-written file, and it still runs.
    assert await driver.is_alive(sandbox)
    r = await driver.exec(sandbox, "ls -A /tmp")
    assert r.stdout.split() == ["a", "b"], r
    # With 40 of its 48 MiB held by /tmp, 60 MiB still go to its disk.
    for path in ("/workspace/a", "/home/user/b", "/workspace/c"):
        await driver.write_file(sandbox, path, chunk)
    r = await driver.exec(sandbox, "cat /workspace/a /home/user/b /workspace/c | wc -c")
    assert r.stdout.strip() == str(3 * len(chunk)), r
    assert await driver.is_alive(sandbox)


async def test_commands_go_before_the_sandbox_itself_when_memory_runs_out(
    driver: LocalSandboxDriver,
    make_sandbox: MakeSandbox,
    host_pids: Callable[[str], set[int]],
) -> None:
    # In a full sandbox every process is small (files in /tmp belong to none),
    # so size alone could make the OOM killer pick bubblewrap or init.
    sandbox = await make_sandbox()
    r = await driver.exec(
        sandbox, "cat /proc/self/oom_score_adj; sh -c 'cat /proc/self/oom_score_adj'"
    )
    assert r.stdout.split() == [str(COMMAND_SCORE)] * 2, r
    keepers = host_pids(sandbox)  # bubblewrap and init: all that runs now
    assert keepers
    for pid in keepers:
        assert (await anyio.Path(f"/proc/{pid}/oom_score_adj").read_text()).strip() == "0"


async def test_an_upload_that_does_not_fit_is_refused_before_a_command_pays_for_it(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    # A command holds most of the memory; an upload to memory (/tmp) that would
    # not fit must fail on its own, never wake the OOM killer against the
    # command. One to the disk fits: its page cache is reclaimed, not held.
    sandbox = await make_sandbox(ResourceLimits(vcpus=1, memory_mib=128, disk_mib=256, pids=64))
    holder = asyncio.create_task(
        driver.exec(
            sandbox,
            "python3 -c \"import time; a = bytearray(95 << 20); a[::4096] = b'x' * len(a[::4096]);"
            " print('held', flush=True); time.sleep(4); print('done')\"",
            timeout_ms=30_000,
        )
    )
    await asyncio.sleep(2)
    with pytest.raises(SandboxFileTooLarge):
        await driver.write_file(sandbox, "/tmp/big", b"x" * (30 * 1024 * 1024))
    await driver.write_file(sandbox, "/workspace/big", b"x" * (30 * 1024 * 1024))
    r = await holder
    assert (r.exit_code, r.stdout) == (0, "held\ndone\n"), r
    await driver.write_file(sandbox, "/tmp/big", b"x" * (30 * 1024 * 1024))  # fits now


async def test_pausing_during_an_upload_never_leaves_it_hanging(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    # A sandbox starved of CPU: were the upload's writer subject to its quota (or
    # frozen with it), the upload would crawl, and a pause would stop it for good.
    sandbox = await make_sandbox(ResourceLimits(vcpus=0.01, memory_mib=256, disk_mib=256, pids=64))
    data = b"x" * (24 * 1024 * 1024)
    for delay in (0.0, 0.02, 0.2):
        upload = asyncio.create_task(driver.write_file(sandbox, "f", data))
        await asyncio.sleep(delay)
        try:
            await driver.pause(sandbox)
        except SandboxStateConflict:
            paused = False  # an upload in flight: refused, not frozen
        else:
            paused = True
        try:
            # Still paused: the upload must end on its own all the same.
            with contextlib.suppress(SandboxStateConflict):  # paused before it began
                await asyncio.wait_for(upload, timeout=10)
        finally:
            if paused:
                await driver.resume(sandbox)
    await asyncio.wait_for(driver.write_file(sandbox, "f", data), timeout=10)
    assert await driver.read_file(sandbox, "f") == data
