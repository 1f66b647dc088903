"""``rt.sandbox`` against the real service over a socket, with real isolation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtools import (
    AsyncRunTools,
    AsyncSandbox,
    BadRequestError,
    ConflictError,
    ExecChunk,
    ExecExit,
    NotFoundError,
    RunTools,
    Sandbox,
)
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve


@pytest.fixture
def served(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    with serve(settings, secret_registry) as app:
        yield app


@pytest.fixture
def rt(served: ServedApp) -> Iterator[RunTools]:
    caller = served.caller()
    with RunTools(api_key=caller.key, base_url=served.url) as client:
        yield client


def test_a_sandboxes_whole_life_through_the_sdk(rt: RunTools) -> None:
    sb = rt.sandbox.create(name="sdk-env", tags=["sdk"], env={"WHO": "sdk"}, idle_timeout=600)
    assert isinstance(sb, Sandbox)
    assert sb.status == "running"
    assert sb.env_keys == ["WHO"]
    result = sb.exec("echo $WHO; exit 2")
    assert result.stdout == "sdk\n"
    assert result.exit_code == 2
    assert not result.timed_out
    events = list(sb.exec_stream("echo a; echo b >&2"))
    assert ExecChunk(stream="stdout", data="a\n") in events
    assert ExecChunk(stream="stderr", data="b\n") in events
    assert isinstance(events[-1], ExecExit)
    assert events[-1].exit_code == 0
    sb.files.write("notes/hello.txt", "hello")
    assert sb.files.read("/workspace/notes/hello.txt") == b"hello"
    assert [e.name for e in sb.files.list("notes")] == ["hello.txt"]
    archive = b"".join(sb.files.read_archive("notes"))
    assert sb.files.write_archive("/tmp/notes", [archive[:100], archive[100:]]).files == 1
    assert sb.files.read("/tmp/notes/hello.txt") == b"hello"
    sb.exec("sleep 300 >/dev/null 2>&1 &")
    assert sb.kill().status == "running"
    assert "sleep 300" not in sb.exec("ps -e -o args=").stdout.splitlines()
    assert rt.sandbox.kill("sdk-env").id == sb.id
    assert sb.pause().status == "paused"
    with pytest.raises(ConflictError, match="resume it first"):
        sb.exec("true")
    with pytest.raises(ConflictError, match="resume it first"):
        sb.kill()
    assert rt.sandbox.resume("sdk-env").status == "running"
    assert [s.id for s in rt.sandbox.list(tags=["sdk"], status="running")] == [sb.id]
    assert rt.sandbox.get("sdk-env").id == sb.id
    assert sb.destroy().status == "destroyed"
    assert list(rt.sandbox.list(status=["running", "paused"])) == []


def test_sdk_errors_for_sandboxes(rt: RunTools) -> None:
    with pytest.raises(NotFoundError):
        rt.sandbox.get("nope")
    with pytest.raises(BadRequestError):
        rt.sandbox.create(resources={"memory": 1})
    sb = rt.sandbox.create()
    with pytest.raises(BadRequestError, match="outside"):
        sb.files.read("/etc/passwd")


@pytest.mark.anyio
async def test_async_sdk_runs_and_streams(served: ServedApp, tmp_path: Path) -> None:
    caller = served.caller()
    async with AsyncRunTools(api_key=caller.key, base_url=served.url) as rt:
        sb = await rt.sandbox.create(name="async-env")
        assert isinstance(sb, AsyncSandbox)
        assert (await sb.exec("echo hi")).stdout == "hi\n"
        chunks = [e async for e in sb.exec_stream("echo streamed")]
        assert chunks[0] == ExecChunk(stream="stdout", data="streamed\n")
        await sb.files.write("x.txt", b"\x00\x01")
        assert await sb.files.read("x.txt") == b"\x00\x01"
        assert (await sb.kill()).status == "running"
        assert (await rt.sandbox.kill("async-env")).id == sb.id
        assert await sb.files.read("x.txt") == b"\x00\x01"
        assert [s.name async for s in rt.sandbox.list()] == ["async-env"]
        folder = tmp_path / "up"
        (folder / "a").mkdir(parents=True)
        (folder / "a" / "one.txt").write_text("one")
        written = await sb.files.upload_dir(folder, "copy")
        assert (written.path, written.files, written.size) == ("/workspace/copy", 1, 3)
        assert await sb.files.download_dir("copy", tmp_path / "down") == 1
        assert (tmp_path / "down" / "a" / "one.txt").read_text() == "one"
        assert (await sb.destroy()).status == "destroyed"
