"""Commands: background processes, timeouts, output caps, streaming, environment."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from runtools.server.domain.errors import InvalidRequest, SandboxNotFound
from runtools.server.sandbox import ExecChunk, ExecExit, LocalSandboxDriver

pytestmark = pytest.mark.anyio

FETCH = (
    "python3 - <<'EOF'\n"
    "import time, urllib.request\n"
    "for _ in range(100):\n"
    "    try:\n"
    "        with urllib.request.urlopen('http://localhost:8000/hello.txt') as r:\n"
    "            print(r.status, r.read().decode()); break\n"
    "    except OSError:\n"
    "        time.sleep(0.05)\n"
    "EOF"
)


async def test_background_process_survives_between_commands(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    await driver.write_file(sandbox, "hello.txt", b"hi there")
    started = time.monotonic()
    # Output deliberately not redirected: the server keeps the pipes open.
    r = await driver.exec(sandbox, "python3 -m http.server 8000 &", timeout_ms=10_000)
    assert r.exit_code == 0
    assert not r.timed_out
    assert time.monotonic() - started < 3
    r = await driver.exec(sandbox, FETCH, timeout_ms=10_000)
    assert r.stdout.strip() == "200 hi there", r.stderr
    # The server keeps logging into the (drained) pipe without dying.
    r = await driver.exec(sandbox, FETCH, timeout_ms=10_000)
    assert r.stdout.strip() == "200 hi there", r.stderr


async def test_timeout_kills_the_whole_tree(
    driver: LocalSandboxDriver, sandbox: str, host_pids: Callable[[str], set[int]]
) -> None:
    survivor = await driver.exec(
        sandbox, "sleep 1000 >/dev/null 2>&1 & echo $! > /workspace/bg.pid"
    )
    assert survivor.exit_code == 0
    r = await driver.exec(
        sandbox,
        "(setsid sh -c 'echo $$ > /workspace/child.pid; exec sleep 999' &); "
        "sh -c 'echo $$ > /workspace/grandchild.pid; sleep 998' & sleep 997",
        timeout_ms=1000,
    )
    assert r.timed_out
    assert r.exit_code == 137
    assert 900 <= r.duration_ms < 5000
    # Nothing of the command is left, not even a zombie: bwrap, PID 1, init
    # and the earlier background sleep remain.
    assert len(host_pids(sandbox)) == 4
    child = (await driver.read_file(sandbox, "child.pid")).decode().strip()
    grandchild = (await driver.read_file(sandbox, "grandchild.pid")).decode().strip()
    bg = (await driver.read_file(sandbox, "bg.pid")).decode().strip()
    r = await driver.exec(
        sandbox,
        # Markers are quoted apart so the command line itself never matches.
        f"kill -0 {child} && echo child-''alive; "
        f"kill -0 {grandchild} && echo grandchild-''alive; "
        f"kill -0 {bg} && echo bg-''alive; "
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    )
    assert "child-alive" not in r.stdout
    assert "grandchild-alive" not in r.stdout
    assert "sleep 99" not in r.stdout  # no sleep 999/998/997 left
    assert "bg-alive" in r.stdout  # only the timed-out command was killed


def _peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
async def test_huge_output_is_truncated_with_bounded_memory(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    _peak_rss_reset()
    before = _peak_rss_bytes()
    r = await driver.exec(
        sandbox,
        "yes | head -c 1000000000; yes err | head -c 300000 >&2",
        timeout_ms=60_000,
        max_output_bytes=64 * 1024,
    )
    growth = _peak_rss_bytes() - before
    assert r.exit_code == 0
    assert not r.timed_out
    assert r.stdout_truncated
    assert r.stderr_truncated
    assert len(r.stdout) == 64 * 1024
    assert r.stdout.startswith("y\ny\n")
    assert len(r.stderr) == 64 * 1024
    assert growth < 100 * 1024 * 1024, f"peak RSS grew by {growth} bytes"


async def test_output_below_the_cap_is_complete(driver: LocalSandboxDriver, sandbox: str) -> None:
    r = await driver.exec(sandbox, "echo out; echo err >&2; exit 3", max_output_bytes=100)
    assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 3)
    assert not r.stdout_truncated
    assert not r.stderr_truncated
    assert not r.timed_out


async def test_exec_stream_yields_chunks_as_they_come(
    driver: LocalSandboxDriver, sandbox: str
) -> None:
    started = time.monotonic()
    first_at = None
    events = []
    async for event in driver.exec_stream(sandbox, "echo first; sleep 1; echo second >&2; exit 4"):
        if first_at is None:
            first_at = time.monotonic() - started
        events.append(event)
    assert first_at is not None
    assert first_at < 0.9
    assert events[:2] == [ExecChunk("stdout", "first\n"), ExecChunk("stderr", "second\n")]
    final = events[-1]
    assert isinstance(final, ExecExit)
    assert final.exit_code == 4
    assert not final.timed_out
    assert final.duration_ms >= 1000


async def test_exec_stream_timeout(driver: LocalSandboxDriver, sandbox: str) -> None:
    events = [e async for e in driver.exec_stream(sandbox, "echo a; sleep 30", timeout_ms=300)]
    assert events[0] == ExecChunk("stdout", "a\n")
    assert isinstance(events[-1], ExecExit)
    assert events[-1].timed_out


async def test_environment_and_cwd(
    driver: LocalSandboxDriver, make_sandbox: Callable[..., Awaitable[str]]
) -> None:
    sandbox = await make_sandbox(env={"FROM_SANDBOX": "s", "OVERRIDDEN": "sandbox"})
    r = await driver.exec(sandbox, "pwd; env | sort", env={"FROM_EXEC": "e", "OVERRIDDEN": "exec"})
    lines = r.stdout.splitlines()
    assert lines[0] == "/workspace"
    env = dict(line.split("=", 1) for line in lines[1:])
    assert env.pop("PWD") == "/workspace"
    assert env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/home/user",
        "LANG": "C.UTF-8",
        "FROM_SANDBOX": "s",
        "FROM_EXEC": "e",
        "OVERRIDDEN": "exec",
    }
    r = await driver.exec(sandbox, "pwd; touch here", cwd="/tmp")
    assert r.stdout == "/tmp\n"
    assert r.exit_code == 0
    r = await driver.exec(sandbox, "pwd", cwd="/nonexistent")
    assert r.exit_code != 0


async def test_invalid_requests(driver: LocalSandboxDriver, sandbox: str) -> None:
    with pytest.raises(InvalidRequest):
        await driver.exec(sandbox, "true", env={"BAD=NAME": "x"})
    with pytest.raises(InvalidRequest):
        await driver.exec(sandbox, "true", env={"LD_PRELOAD": "a\0b"})
    with pytest.raises(InvalidRequest):
        await driver.exec(sandbox, "true", timeout_ms=0)
    with pytest.raises(SandboxNotFound):
        await driver.exec("t-missing", "true")
    with pytest.raises(SandboxNotFound):
        await driver.exec("../../etc", "true")
