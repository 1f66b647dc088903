"""A sandbox's files are on a disk of its own: an ext4 image sized by ``disk``.

Real loop devices: the image is loop-mounted in the sandbox's mount
namespace. The tests look at what a user sees inside (ENOSPC, files kept)
and at what the host is left with (free space, loop devices, mounts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from runtools.server.sandbox import DEFAULT_TEMPLATE, LocalSandboxDriver, ResourceLimits
from support.disks import host_mounts_naming, loop_devices_naming, wait_no_loop_device

from .conftest import TINY

pytestmark = pytest.mark.anyio
MakeSandbox = Callable[..., Awaitable[str]]
MIB = 1024 * 1024


def _own_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize(
    "template", [DEFAULT_TEMPLATE, TINY], ids=["host-template", "imported-template"]
)
async def test_disk_is_a_filesystem_of_its_size_and_leaves_nothing_behind(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox, tmp_path: Path, template: str
) -> None:
    state = tmp_path / "driver-state"
    rss_before = _own_rss()
    # Less memory than disk: the files must not be memory.
    sid = await make_sandbox(
        ResourceLimits(vcpus=1, memory_mib=32, disk_mib=64, pids=64), template=template
    )
    r = await driver.exec(
        sid,
        "stat -f -c %T /workspace /home/user; "
        "head -c 100M /dev/zero > /workspace/big; echo $?; sync; wc -c < /workspace/big",
        timeout_ms=60_000,
    )
    kinds, status, size = r.stdout.split("\n")[:2], *r.stdout.split("\n")[2:4]
    assert kinds == ["ext2/ext3", "ext2/ext3"], r  # ext4, as stat names it
    assert status == "1", r
    assert "No space left on device" in r.stderr
    assert 48 * MIB < int(size) <= 64 * MIB  # the disk, less its own metadata
    assert await driver.is_alive(sid)  # filled its disk, not its memory
    # The host lent it at most its disk's size (the image's allocated blocks: the
    # host's free space moves with every other test running beside this one).
    (image,) = [p for p in state.rglob("disk.img") if sid in str(p)]
    assert image.stat().st_blocks * 512 < 72 * MIB
    assert _own_rss() - rss_before < 16 * MIB
    # Its mounts are in its own mount namespace: the host's table has none.
    (loop,) = loop_devices_naming(sid)  # the one device it lives on
    device = loop.split(":")[0]
    assert host_mounts_naming(sid) == []
    assert [m for m in host_mounts_naming(device) if m.split()[0] == device] == []

    await driver.destroy(sid)
    assert wait_no_loop_device(sid) == []
    assert host_mounts_naming(sid) == []
    assert list(state.rglob("disk.img")) == []  # given back


async def test_files_survive_pause_and_resume(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    sid = await make_sandbox()
    await driver.write_file(sid, "/workspace/kept.txt", b"kept\n")
    r = await driver.exec(
        sid, "echo home > /home/user/note; dd if=/dev/urandom of=blob bs=1M count=8"
    )
    assert r.exit_code == 0, r
    before = await driver.exec(sid, "sha256sum blob")
    await driver.pause(sid)
    await driver.resume(sid)
    assert await driver.read_file(sid, "/workspace/kept.txt") == b"kept\n"
    assert (await driver.exec(sid, "cat /home/user/note")).stdout == "home\n"
    assert (await driver.exec(sid, "sha256sum blob")).stdout == before.stdout


async def test_sandboxes_do_not_share_a_disk(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    small = ResourceLimits(vcpus=1, memory_mib=64, disk_mib=16, pids=64)
    a, b = await make_sandbox(small), await make_sandbox(small)
    r = await driver.exec(a, "head -c 32M /dev/zero > fill; echo $?")
    assert r.stdout == "1\n"
    # The other's disk is untouched by the one that filled up.
    r = await driver.exec(b, "head -c 8M /dev/zero > half && echo ok; ls -A /workspace")
    assert r.stdout == "ok\nhalf\n", r
    # Disks of one size are copies of one blank disk, which neither wrote to.
    c = await make_sandbox(small)
    r = await driver.exec(c, "ls -A /workspace /home/user; df -k /workspace | tail -1")
    *listing, usage, _ = r.stdout.split("\n")
    assert listing == ["/home/user:", "", "/workspace:"], r
    assert int(usage.split()[2]) < 1024  # KiB used: next to nothing
