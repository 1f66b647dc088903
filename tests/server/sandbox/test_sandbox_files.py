"""The file API: confinement to the sandbox's writable directories."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from runtools.server.domain.errors import (
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxPathRejected,
)
from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from support.secret_registry import SecretRegistry

pytestmark = pytest.mark.anyio


async def test_write_read_list_round_trip(driver: LocalSandboxDriver, sandbox: str) -> None:
    await driver.write_file(sandbox, "dir/sub/hello.txt", b"hello")
    await driver.write_file(sandbox, "/tmp/t.txt", b"tmp")
    await driver.write_file(sandbox, "/home/user/.config/x", b"home")
    assert await driver.read_file(sandbox, "/workspace/dir/sub/hello.txt") == b"hello"
    assert await driver.read_file(sandbox, "dir/./sub/../sub/hello.txt") == b"hello"
    await driver.write_file(sandbox, "dir/sub/hello.txt", b"hi")  # replace, shorter
    assert await driver.read_file(sandbox, "dir/sub/hello.txt") == b"hi"

    entries = await driver.list_files(sandbox, "dir/sub")
    assert [(e.name, e.path, e.type, e.size) for e in entries] == [
        ("hello.txt", "/workspace/dir/sub/hello.txt", "file", 2)
    ]
    assert abs(entries[0].modifiedAt.timestamp() - time.time()) < 60
    listing = {e.name: e.type for e in await driver.list_files(sandbox, "/workspace")}
    assert listing == {"dir": "directory"}

    # Files written by the service belong to the sandbox user, who can change them.
    r = await driver.exec(
        sandbox, "stat -c %u dir/sub/hello.txt dir; id -u; echo more >> dir/sub/hello.txt"
    )
    owner, dir_owner, uid = r.stdout.split()
    assert owner == dir_owner == uid
    assert r.exit_code == 0
    assert await driver.read_file(sandbox, "dir/sub/hello.txt") == b"himore\n"
    assert (await driver.exec(sandbox, "cat /tmp/t.txt ~/.config/x")).stdout == "tmphome"


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "/workspace/../etc/passwd",
        "/workspace/../../../../etc/passwd",
        "/etc/passwd",
        "/proc/1/environ",
        "/",
        "/usr/bin/sh",
        "/home/other",
    ],
)
async def test_paths_outside_are_rejected(
    driver: LocalSandboxDriver, sandbox: str, path: str
) -> None:
    with pytest.raises(SandboxPathRejected):
        await driver.read_file(sandbox, path)
    with pytest.raises(SandboxPathRejected):
        await driver.write_file(sandbox, path, b"x")
    with pytest.raises(SandboxPathRejected):
        await driver.list_files(sandbox, path)


async def test_files_and_directories_are_not_taken_for_each_other(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    await driver.write_file(sandbox, "notes.txt", b"v1")
    for path in ("notes.txt/", "/workspace/notes.txt/.", "new.txt/"):
        with pytest.raises(SandboxPathRejected, match="cannot end with '/'"):
            await driver.write_file(sandbox, path, b"v2")
        with pytest.raises(SandboxPathRejected, match="cannot end with '/'"):
            await driver.read_file(sandbox, path)
    assert await driver.read_file(sandbox, "notes.txt") == b"v1"
    assert [e.name for e in await driver.list_files(sandbox, "/workspace")] == ["notes.txt"]
    with pytest.raises(SandboxPathRejected, match=r"not a directory: /workspace/notes\.txt"):
        await driver.list_files(sandbox, "notes.txt")
    with pytest.raises(SandboxNotFound):
        await driver.list_files(sandbox, "missing")


async def test_symlinks_cannot_escape(
    driver: LocalSandboxDriver, sandbox: str, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    token = secret_registry.add(secrets.token_hex(16))
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text(token)
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    r = await driver.exec(
        sandbox,
        f"ln -s '{host_secret}' hostlink; ln -s /etc/hostname etclink; "
        "ln -s ../../../../../etc/passwd dotdot; ln -s / rootlink; "
        f"ln -s '{outside_dir}' outdir; ln -s /proc/1/root p1root; ln -s /usr usr; "
        "mkdir real; echo inside > real/file; ln -s /workspace/real inabs; ln -s real inrel; "
        "ln -s loop1 loop2; ln -s loop2 loop1",
    )
    assert r.exit_code == 0, r.stderr

    # Absolute links resolve inside the sandbox, never against the host.
    with pytest.raises((SandboxNotFound, SandboxPathRejected)):
        await driver.read_file(sandbox, "hostlink")
    for link in ("etclink", "dotdot", "rootlink/etc/passwd", "p1root/etc/passwd", "usr/bin/sh"):
        with pytest.raises(SandboxPathRejected):
            await driver.read_file(sandbox, link)
    with pytest.raises(SandboxPathRejected):
        await driver.list_files(sandbox, "usr")
    with pytest.raises(SandboxPathRejected):
        await driver.write_file(sandbox, "rootlink/etc/evil", b"x")
    with pytest.raises(SandboxPathRejected):
        await driver.read_file(sandbox, "loop1")
    # Writing through a link to a host path (here under /tmp) lands in the
    # sandbox's own /tmp, never on the host.
    await driver.write_file(sandbox, "outdir/planted", b"x")
    assert list(outside_dir.iterdir()) == []
    r = await driver.exec(sandbox, f"cat '{outside_dir}/planted'")
    assert r.stdout == "x"
    assert host_secret.read_text() == token

    # Links that stay inside work.
    assert await driver.read_file(sandbox, "inabs/file") == b"inside\n"
    assert await driver.read_file(sandbox, "inrel/file") == b"inside\n"
    await driver.write_file(sandbox, "inrel/new", b"n")
    assert await driver.read_file(sandbox, "real/new") == b"n"
    names = {e.name: e.type for e in await driver.list_files(sandbox, ".")}
    assert names["rootlink"] == "symlink"
    assert names["real"] == "directory"


async def test_size_limits_and_special_files(tmp_path: Path) -> None:
    driver = LocalSandboxDriver(tmp_path / "small-state", max_file_bytes=1024, max_list_entries=10)
    await driver.check_available()
    try:
        await driver.create("t-small", SandboxSpec())
        with pytest.raises(SandboxFileTooLarge):
            await driver.write_file("t-small", "big", b"x" * 1025)
        await driver.write_file("t-small", "ok", b"x" * 1024)
        await driver.exec(
            "t-small",
            "head -c 4096 /dev/zero > big; mkdir many; "
            "for i in $(seq 20); do touch many/$i; done; mkfifo fifo",
        )
        with pytest.raises(SandboxFileTooLarge):
            await driver.read_file("t-small", "big")
        with pytest.raises(SandboxFileTooLarge):
            await driver.list_files("t-small", "many")
        started = time.monotonic()
        with pytest.raises(SandboxPathRejected):
            await driver.read_file("t-small", "fifo")  # must not block on a FIFO
        with pytest.raises(SandboxPathRejected):
            await driver.write_file("t-small", "fifo", b"x")
        assert time.monotonic() - started < 1
        with pytest.raises(SandboxNotFound):
            await driver.read_file("t-small", "missing")
        with pytest.raises(SandboxPathRejected):
            await driver.read_file("t-small", "many")
    finally:
        await driver.reap_orphans(set())
