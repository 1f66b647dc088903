"""What a sandbox must not see or reach: host files, processes, env, network, peers.

Each test runs twice: on the host's template and on an imported one.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from runtools.server.sandbox import DEFAULT_TEMPLATE, LocalSandboxDriver
from support.secret_registry import SecretRegistry

from .conftest import TINY, MakeSandbox

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[DEFAULT_TEMPLATE, TINY], ids=["host-template", "imported-template"])
def make_sandbox(make_sandbox: MakeSandbox, request: pytest.FixtureRequest) -> MakeSandbox:
    """Every test here runs on a sandbox of the host's template and of an imported one."""

    async def make(**options: object) -> str:
        return await make_sandbox(template=request.param, **options)

    return make


async def test_host_files_are_invisible(
    driver: LocalSandboxDriver, sandbox: str, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    token = secret_registry.add(secrets.token_hex(16))
    database = tmp_path / "service.db"
    database.write_text(f"password={token}\n")
    driver_root = tmp_path / "driver-state"
    assert driver_root.is_dir()

    probes = [
        str(database),
        str(driver_root),
        "/root",
        "/work",
        "/var",
        "/sys/fs/cgroup",
        "/etc/shadow",
        "/etc/ssh",
        "/etc/ssl/private",
        "/home/runtools",
    ]
    script = "; ".join(f"test -e '{p}' && echo VISIBLE:{p}" for p in probes)
    r = await driver.exec(sandbox, f"{script}; cat '{database}'; true")
    assert "VISIBLE" not in r.stdout
    assert token not in r.stdout + r.stderr
    assert "No such file" in r.stderr

    # The generated account database names no host account.
    passwd = await anyio.Path("/etc/passwd").read_text()
    host_users = {line.split(":")[0] for line in passwd.splitlines()}
    r = await driver.exec(sandbox, "cut -d: -f1 /etc/passwd")
    assert set(r.stdout.split()) <= {"root", "user", "nobody"}
    assert host_users - {"root", "nobody"}, "host has no other accounts to leak"


async def test_service_environment_does_not_leak(
    driver: LocalSandboxDriver,
    make_sandbox: Callable[..., Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    secret_registry: SecretRegistry,
) -> None:
    token = secret_registry.add(secrets.token_hex(16))
    monkeypatch.setenv("RUNTOOLS_TEST_SECRET", token)
    sandbox = await make_sandbox()
    r = await driver.exec(
        sandbox,
        "env; cat /proc/1/environ; cat /proc/[0-9]*/environ 2>/dev/null; true",
        env={"VISIBLE": "yes"},
    )
    assert token not in r.stdout + r.stderr
    assert "RUNTOOLS_TEST_SECRET" not in r.stdout
    names = {line.split("=", 1)[0] for line in r.stdout.splitlines() if "=" in line}
    assert {"PATH", "HOME", "LANG", "VISIBLE"} <= names
    # /proc/1 is the sandbox's own PID 1 (root, no capabilities): unreadable.
    assert "Permission denied" in r.stderr


async def test_only_sandbox_processes_are_visible(driver: LocalSandboxDriver, sandbox: str) -> None:
    r = await driver.exec(
        sandbox, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
    )
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) <= 6, lines
    assert not any("pytest" in line or sys.executable in line for line in lines)
    assert str(os.getpid()) not in (await driver.exec(sandbox, "ls /proc")).stdout.split()


async def test_cannot_signal_host_processes(driver: LocalSandboxDriver, sandbox: str) -> None:
    # Inherits our stdio as a plain child would: no pipes to close.
    victim = await anyio.open_process(["sleep", "60"], stdin=None, stdout=None, stderr=None)
    try:
        r = await driver.exec(sandbox, f"kill -9 {victim.pid}; kill -9 -1; true")
        assert "No such process" in r.stderr  # invisible, not merely forbidden
        assert victim.returncode is None
        assert (await driver.is_alive(sandbox)) is True
    finally:
        victim.kill()
        await victim.wait()


async def test_network_is_loopback_only(driver: LocalSandboxDriver, sandbox: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    probe = (
        "import socket\n"
        f"for host, port in [('127.0.0.1', {port}), ('127.0.0.1', 5432), ('1.1.1.1', 53),"
        " ('10.0.0.1', 80)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n"
        "        print('CONNECTED', host, port)\n"
        "    except OSError as exc:\n"
        "        print('failed', host, port, exc.errno)\n"
    )
    try:
        r = await driver.exec(sandbox, f'python3 -c "{probe}"; cat /proc/net/dev')
        assert r.exit_code == 0, r.stderr
        assert "CONNECTED" not in r.stdout
        assert r.stdout.count("failed") == 4
        interfaces = [line.split(":")[0].strip() for line in r.stdout.splitlines() if ":" in line]
        assert [i for i in interfaces if not i.startswith("failed")] == ["lo"]
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


async def test_other_sandboxes_are_invisible(
    driver: LocalSandboxDriver,
    make_sandbox: Callable[..., Awaitable[str]],
    host_pids: Callable[[str], set[int]],
) -> None:
    a, b = await make_sandbox(), await make_sandbox()
    token = secrets.token_hex(16)
    await driver.write_file(b, "/workspace/secret.txt", token.encode())
    await driver.write_file(b, "/tmp/secret.txt", token.encode())
    b_pids = sorted(host_pids(b))
    reads = " ".join(f"/proc/{pid}/root/workspace/secret.txt" for pid in b_pids)
    r = await driver.exec(a, f"cat /workspace/secret.txt /tmp/secret.txt {reads}; ls /proc; true")
    assert token not in r.stdout
    assert (await driver.read_file(b, "secret.txt")).decode() == token
    ra = await driver.exec(a, "id -u")
    rb = await driver.exec(b, "id -u")
    assert ra.stdout != rb.stdout  # one host uid per sandbox


async def test_commands_run_unprivileged(driver: LocalSandboxDriver, sandbox: str) -> None:
    r = await driver.exec(
        sandbox,
        "id -u; grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status; "
        "ls /proc/self/fd; touch /usr/x 2>&1; mount -t tmpfs none /mnt 2>&1; true",
    )
    lines = r.stdout.split("\n")
    assert int(lines[0]) != 0
    assert "CapEff:\t0000000000000000" in r.stdout
    assert "CapBnd:\t0000000000000000" in r.stdout
    assert "NoNewPrivs:\t1" in r.stdout
    fds = [line for line in lines[5:] if line.isdigit()]
    assert set(fds) <= {"0", "1", "2", "3"}, fds  # 3 is ls's own directory fd
    assert "Read-only file system" in r.stdout or "Permission denied" in r.stdout
