"""Many files at once: tar streams in and out of a sandbox, all or nothing, confined."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from runtools.server.domain.errors import (
    InvalidRequest,
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxPathRejected,
)
from runtools.server.sandbox import LocalSandboxDriver, ResourceLimits

pytestmark = pytest.mark.anyio

MakeSandbox = Callable[..., Awaitable[str]]


def tar_of(members: Iterable[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for info, content in members:
            if content is not None:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def file(name: str, content: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, content


def entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, None


async def chunked(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def shell(driver: LocalSandboxDriver, sandbox: str, command: str) -> str:
    result = await driver.exec(sandbox, command)
    assert result.exit_code == 0, result.stderr
    return result.stdout


async def test_unpacks_into_a_new_directory_owned_by_the_sandbox_user(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    data = tar_of(
        [
            entry("src", tarfile.DIRTYPE),
            file("src/main.py", b"print('hi')\n"),
            file("run.sh", b"echo run\n", mode=0o755),
            entry("latest", tarfile.SYMTYPE, "src/main.py"),
        ],
        mode="w:gz",
    )
    written = await driver.write_archive(sandbox, "project/app", chunked(data, 100))
    assert (written.path, written.files, written.size) == ("/workspace/project/app", 2, 21)
    out = await shell(
        driver,
        sandbox,
        "cd project/app && cat latest && ./run.sh && stat -c '%u %a' src/main.py run.sh"
        " && id -u && ls -a /workspace /workspace/project",
    )
    lines = out.split("\n")
    assert lines[:2] == ["print('hi')", "run"]
    uid = lines[4]
    assert lines[2:4] == [f"{uid} 644", f"{uid} 755"]
    assert ".upload" not in out  # nothing staged is left


async def test_merges_into_an_existing_directory(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.write_file(sandbox, "d/keep.txt", b"kept")
    await driver.write_file(sandbox, "d/sub/old.txt", b"old")
    data = tar_of([file("sub/old.txt", b"new"), file("sub/added.txt", b"added")])
    await driver.write_archive(sandbox, "/workspace/d", chunked(data))
    assert await driver.read_file(sandbox, "d/keep.txt") == b"kept"
    assert await driver.read_file(sandbox, "d/sub/old.txt") == b"new"
    assert await driver.read_file(sandbox, "d/sub/added.txt") == b"added"


@pytest.mark.parametrize(
    "bad",
    [
        entry("../escape.txt", tarfile.REGTYPE),
        entry("inner/../../escape.txt", tarfile.REGTYPE),
        entry("/etc/evil", tarfile.REGTYPE),
        entry("out", tarfile.SYMTYPE, "/etc/passwd"),
        entry("out", tarfile.SYMTYPE, "../../../etc"),
        entry("hard", tarfile.LNKTYPE, "../../etc/passwd"),
        entry("hard", tarfile.LNKTYPE, "/etc/passwd"),
        entry("null", tarfile.CHRTYPE),
        entry("disk", tarfile.BLKTYPE),
        entry("fifo", tarfile.FIFOTYPE),
    ],
    ids=[
        "dotdot",
        "inner-dotdot",
        "absolute",
        "abs-link",
        "rel-link",
        "hardlink",
        "abs-hardlink",
        "chr",
        "blk",
        "fifo",
    ],
)
async def test_a_refused_member_leaves_nothing_behind(
    driver: LocalSandboxDriver, sandbox: str, bad: tuple[tarfile.TarInfo, None]
) -> None:
    info, _ = bad
    content = b"evil" if info.isreg() else None
    data = tar_of([file("first.txt", b"fine"), (info, content), file("last.txt")])
    with pytest.raises(SandboxPathRejected):
        await driver.write_archive(sandbox, "target", chunked(data))
    # Neither the good members before it, nor the directory, nor any staging.
    assert await shell(driver, sandbox, "ls -A /workspace; ls -A /tmp") == ""


async def test_targets_outside_the_writable_directories_are_refused(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    data = tar_of([file("x")])
    await shell(driver, sandbox, "ln -s /etc etc; touch plain")
    for path in ("/etc", "../etc", "/usr/lib/x", "etc", "etc/sub"):
        with pytest.raises(SandboxPathRejected):
            await driver.write_archive(sandbox, path, chunked(data))
    with pytest.raises(SandboxPathRejected):
        await driver.write_archive(sandbox, "plain/sub", chunked(data))


async def test_not_a_tar_is_an_invalid_request(driver: LocalSandboxDriver, sandbox: str) -> None:
    with pytest.raises(InvalidRequest):
        await driver.write_archive(sandbox, "x", chunked(os.urandom(5000)))
    assert await shell(driver, sandbox, "ls -A /workspace") == ""


async def test_an_archive_larger_than_the_disk_is_too_large_and_leaves_nothing(
    driver: LocalSandboxDriver, make_sandbox: MakeSandbox
) -> None:
    sandbox = await make_sandbox(ResourceLimits(memory_mib=256, disk_mib=8, pids=64))
    data = tar_of([file(f"f{i}", os.urandom(1024 * 1024)) for i in range(12)])
    with pytest.raises(SandboxFileTooLarge):
        await driver.write_archive(sandbox, "big", chunked(data, 64 * 1024))
    assert await shell(driver, sandbox, "ls -A /workspace") == ""


async def test_a_directory_packs_and_round_trips(driver: LocalSandboxDriver, sandbox: str) -> None:
    members = [file(f"many/f{i:03}.txt", f"file {i}\n".encode()) for i in range(500)]
    data = tar_of(members)
    written = await driver.write_archive(sandbox, "/workspace", chunked(data, 64 * 1024))
    assert written.files == 500
    await shell(
        driver, sandbox, "ln -s many/f001.txt link; mkfifo pipe; touch secret; chmod 000 secret"
    )
    stream = await driver.read_archive(sandbox, "/workspace")
    packed = b"".join([chunk async for chunk in stream])
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        names = {m.name: m for m in archive.getmembers()}
        assert names["link"].issym()
        assert names["link"].linkname == "many/f001.txt"
        assert names["pipe"].isfifo()
        assert "secret" not in names  # unreadable by the sandbox user: skipped
        for i in (0, 250, 499):
            extracted = archive.extractfile(f"many/f{i:03}.txt")
            assert extracted is not None
            assert extracted.read() == f"file {i}\n".encode()
    assert sum(1 for m in names.values() if m.isfile()) == 500


async def test_packing_refuses_what_is_not_a_sandbox_directory(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    await shell(driver, sandbox, "ln -s / root; touch plain")
    for path in ("/etc", "root", "../", "plain"):
        with pytest.raises(SandboxPathRejected):
            await driver.read_archive(sandbox, path)
    with pytest.raises(SandboxNotFound):
        await driver.read_archive(sandbox, "missing")
