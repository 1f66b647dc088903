"""SSH into sandboxes with the real OpenSSH client: who gets in, what runs, what is recorded."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy import select

from runtools.server.settings import Settings
from runtools.server.ssh import HOST_KEY_FILE, host_key
from runtools.server.store.models import AuditEvent
from support.rootfs import build_rootfs, rootfs_tar
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp, serve

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="needs the OpenSSH client (openssh-client)",
)


@pytest.fixture
def ssh_served(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    if os.geteuid() != 0:
        pytest.skip("sandbox API tests need root (namespaces and cgroups)")
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        sandbox_quota=3,
        rate_limits=False,
        ssh_port=0,  # any free port: the server says which (runtime.sandbox_ssh.port)
        sandbox_idle_check_seconds=0.2,
        _env_file=None,
    )
    with serve(settings, secret_registry) as app:
        yield app


@pytest.fixture
def ada(ssh_served: ServedApp) -> Caller:
    return ssh_served.caller("acme", "ada@example.com", "admin")


@pytest.fixture
def bob(ssh_served: ServedApp, ada: Caller) -> Caller:
    return ssh_served.caller("acme", "bob@example.com", "member")


@pytest.fixture
def eve(ssh_served: ServedApp) -> Caller:
    return ssh_served.caller("globex", "eve@globex.example", "admin")


def keypair(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "keys" / name
    path.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def register(caller: Caller, private: Path) -> dict[str, Any]:
    response = caller.post(
        "/v1/ssh-keys",
        json={"name": private.name, "publicKey": Path(f"{private}.pub").read_text()},
    )
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()["data"]
    return key


def sandbox(caller: Caller, name: str, **body: Any) -> dict[str, Any]:
    response = caller.post("/v1/sandboxes", json={"name": name, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


def ssh(
    served: ServedApp,
    key: Path,
    user: str,
    *command: str,
    tty: bool = False,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    port = served.runtime.sandbox_ssh.port
    argv = [
        "ssh",
        "-i",
        str(key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-F",
        "/dev/null",
        "-p",
        str(port),
        *(["-tt"] if tty else ["-T"]),
        f"{user}@127.0.0.1",
        *command,
    ]
    return subprocess.run(
        argv,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 255 and "Permission denied (publickey)" in result.stderr


def audit_events(served: ServedApp, action: str) -> list[AuditEvent]:
    runtime = served.runtime
    runtime.flush()
    with runtime.database.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def test_a_registered_key_runs_a_command_and_gets_its_exit_code(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    key = keypair(tmp_path, "ada")
    registered = register(ada, key)
    box = sandbox(ada, "env")
    by_name = ssh(ssh_served, key, "env", "id -u; echo out; echo err >&2; exit 7")
    assert by_name.returncode == 7, by_name.stderr
    lines = by_name.stdout.split()
    assert lines[1] == "out"
    assert int(lines[0]) != 0  # the sandbox's uid, not root
    assert "err" in by_name.stderr
    by_id = ssh(ssh_served, key, box["id"], "cat; pwd", stdin="from stdin\n")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout == "from stdin\n/workspace\n"
    used = ada.get(f"/v1/ssh-keys/{registered['id']}").json()["data"]
    assert used["lastUsedAt"] is not None
    events = audit_events(ssh_served, "sandbox.ssh")
    assert [(e.target_id, e.actor_id, e.actor_type, e.outcome) for e in events] == [
        (box["id"], registered["id"], "ssh_key", "success")
    ] * 2
    assert events[0].details["fingerprint"] == registered["fingerprint"]
    assert events[0].details["actorUserId"] == ada.user_id
    assert events[0].org_id == ada.get("/v1/me").json()["data"]["organization"]["id"]


def test_a_pty_session_sees_only_the_sandboxes_processes(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "env")
    result = ssh(
        ssh_served,
        key,
        "env",
        "tty; stty size; ls /proc | grep -c '^[0-9]' ; ps -e -o comm= 2>/dev/null | sort -u",
        tty=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.replace("\r", "").splitlines()
    assert out[0].startswith("/dev/pts/")
    processes = int(out[2])
    assert processes < 10, out  # its own few, none of the host's
    assert "python" not in result.stdout  # the service itself is not in view


def test_who_is_refused_and_all_refusals_look_alike(
    ssh_served: ServedApp, ada: Caller, bob: Caller, eve: Caller, tmp_path: Path
) -> None:
    ada_key, bob_key, eve_key, stray = (
        keypair(tmp_path, n) for n in ("ada", "bob", "eve", "stray")
    )
    register(ada, ada_key)
    register(bob, bob_key)
    register(eve, eve_key)
    box = sandbox(ada, "env")
    bobs = sandbox(bob, "bobs")
    assert ssh(ssh_served, ada_key, "env", "true").returncode == 0
    # An admin gets into a member's sandbox; the member into theirs only.
    assert ssh(ssh_served, ada_key, "bobs", "true").returncode == 0
    assert ssh(ssh_served, bob_key, "bobs", "true").returncode == 0
    results = {
        "unregistered key": ssh(ssh_served, stray, "env", "true"),
        "another member's sandbox": ssh(ssh_served, bob_key, "env", "true"),
        "another org's user": ssh(ssh_served, eve_key, "env", "true"),
        "another org's user, by id": ssh(ssh_served, eve_key, box["id"], "true"),
        "no such sandbox": ssh(ssh_served, ada_key, "nothing-here", "true"),
    }
    assert {name: refused(r) for name, r in results.items()} == dict.fromkeys(results, True)
    # Word for word the same, but for the user name OpenSSH puts first.
    assert len({r.stderr.split(": ", 1)[1] for r in results.values()}) == 1
    # A removed member's key opens nothing, not even their own sandbox.
    remove_member(ada, bob)
    assert refused(ssh(ssh_served, bob_key, "bobs", "true"))
    assert refused(ssh(ssh_served, bob_key, bobs["id"], "true"))


def remove_member(admin: Caller, member: Caller) -> None:
    org_id = admin.get("/v1/me").json()["data"]["organization"]["id"]
    response = admin.delete(f"/v1/organizations/{org_id}/members/{member.user_id}")
    assert response.status_code == 200, response.text


def test_a_removed_key_and_a_paused_or_destroyed_sandbox_let_nobody_in(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    key = keypair(tmp_path, "ada")
    registered = register(ada, key)
    sandbox(ada, "env")
    assert ada.post("/v1/sandboxes/env/pause").status_code == 200
    assert refused(ssh(ssh_served, key, "env", "true"))
    assert ada.post("/v1/sandboxes/env/resume").status_code == 200
    assert ssh(ssh_served, key, "env", "true").returncode == 0
    assert ada.delete(f"/v1/ssh-keys/{registered['id']}").status_code == 200
    assert refused(ssh(ssh_served, key, "env", "true"))
    register(ada, key)
    assert ada.delete("/v1/sandboxes/env").status_code == 200
    assert refused(ssh(ssh_served, key, "env", "true"))


def test_a_session_ends_when_its_sandbox_is_paused(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "env")
    port = ssh_served.runtime.sandbox_ssh.port
    session = subprocess.Popen(
        [
            "ssh",
            "-i",
            str(key),
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(port),
            "-T",
            "env@127.0.0.1",
            "echo started; sleep 300",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == "started\n"
        started = time.monotonic()
        assert ada.post("/v1/sandboxes/env/pause").status_code == 200
        code = session.wait(timeout=30)
        assert time.monotonic() - started < 30
        assert code == 137  # killed
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()


def test_keys_named_at_create_let_their_holders_in(
    ssh_served: ServedApp, ada: Caller, bob: Caller, eve: Caller, tmp_path: Path
) -> None:
    bob_key = keypair(tmp_path, "bob")
    bobs = register(bob, bob_key)
    theirs = register(eve, keypair(tmp_path, "eve"))
    for ids, message in (
        ([theirs["id"]], "not an SSH key registered with this organization"),
        (["sshk_nope"], "not an SSH key registered with this organization"),
    ):
        response = ada.post("/v1/sandboxes", json={"name": "shared", "sshKeys": ids})
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]
    assert ada.get("/v1/sandboxes").json()["data"] == []
    shared = sandbox(ada, "shared", sshKeys=[bobs["id"]])
    assert shared["sshKeys"] == [bobs["id"]]
    sandbox(ada, "private")
    assert ssh(ssh_served, bob_key, "shared", "true").returncode == 0
    assert refused(ssh(ssh_served, bob_key, "private", "true"))


def test_the_ssh_route_says_how_to_connect(
    ssh_served: ServedApp, ada: Caller, eve: Caller, tmp_path: Path
) -> None:
    box = sandbox(ada, "env")
    response = ada.get("/v1/sandboxes/env/ssh")
    assert response.status_code == 200, response.text
    port = ssh_served.runtime.sandbox_ssh.port
    assert response.json()["data"] == {
        "host": "127.0.0.1",
        "port": port,
        "user": box["id"],
        "command": f"ssh -p {port} {box['id']}@127.0.0.1",
    }
    assert eve.get(f"/v1/sandboxes/{box['id']}/ssh").status_code == 404


def test_the_host_key_is_made_once_and_kept_private(ssh_served: ServedApp) -> None:
    path = ssh_served.runtime.settings.home / HOST_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_bytes()
    host_key(ssh_served.runtime.settings.home)
    assert path.read_bytes() == first


def test_a_terminal_follows_window_resizes(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    """Resizes as a client sends them (asyncssh's client: OpenSSH's needs a real terminal)."""
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "env")
    port = ssh_served.runtime.sandbox_ssh.port

    async def sizes() -> list[str]:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="env",
            client_keys=[str(key)],
            known_hosts=None,
            agent_path=None,
        ) as conn:
            process = await conn.create_process(term_type="xterm", term_size=(80, 24))
            seen = []
            for columns, rows in ((80, 24), (132, 50)):
                process.change_terminal_size(columns, rows)
                await asyncio.sleep(0.2)
                process.stdin.write("stty size; echo done\n")
                text = ""
                while "done" not in text.split("stty size")[-1].split("echo done")[-1]:
                    text += await asyncio.wait_for(process.stdout.read(1024), 10)
                seen.append(text)
            process.stdin.write("exit 3\n")
            await asyncio.wait_for(process.wait(), 10)
            assert process.exit_status == 3
            return seen

    first, second = asyncio.run(sizes())
    assert "24 80" in first
    assert "50 132" in second


def test_runtools_sandbox_ssh_runs_the_systems_ssh(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path, server_env: dict[str, str]
) -> None:
    key = keypair(tmp_path, "ada")
    register(ada, key)
    box = sandbox(ada, "env")
    env = {
        **{k: v for k, v in server_env.items() if not k.startswith("RUNTOOLS_")},
        "RUNTOOLS_API_URL": ssh_served.url,
        "RUNTOOLS_API_KEY": ada.key,
        "RUNTOOLS_CONFIG_DIR": str(tmp_path / "cli"),
    }
    runtools = str(Path(sys.executable).with_name("runtools"))
    ran = subprocess.run(
        [
            runtools,
            "sandbox",
            "ssh",
            "-i",
            str(key),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"),
            "env",
            *("echo", "hi", "&&", "exit", "4"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 4, ran.stderr
    assert ran.stdout == "hi\n"
    port = ssh_served.runtime.sandbox_ssh.port
    printed = subprocess.run(
        [runtools, "sandbox", "ssh", "--print", "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert printed.stdout.strip() == f"ssh -p {port} {box['id']}@127.0.0.1"


def test_a_session_into_a_sandbox_of_an_imported_template_runs_in_it(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    tarball = rootfs_tar(build_rootfs(rootfs), tmp_path / "tiny.tar.gz")
    ssh_served.runtime.templates.import_template("tiny", tarball)
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "tiny-env", template="tiny")
    plain = ssh(ssh_served, key, "tiny-env", "cat /marker; id -un")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "made for a template test\nuser\n"
    with_tty = ssh(ssh_served, key, "tiny-env", "tty; cat /etc/os-release", tty=True)
    assert with_tty.returncode == 0, with_tty.stdout + with_tty.stderr
    out = with_tty.stdout.replace("\r", "").splitlines()
    assert out[0].startswith("/dev/pts/")
    assert 'PRETTY_NAME="Tiny Test Linux 1.0"' in out


def test_an_open_session_ends_once_its_key_is_removed(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    ssh_served.runtime.sandbox_ssh.recheck_seconds = 0.5
    key = keypair(tmp_path, "ada")
    registered = register(ada, key)
    sandbox(ada, "env")
    port = ssh_served.runtime.sandbox_ssh.port
    session = subprocess.Popen(
        [
            "ssh",
            *("-i", str(key), "-F", "/dev/null", "-p", str(port), "-T"),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
            *("-o", "BatchMode=yes", "-o", "LogLevel=ERROR"),
            "env@127.0.0.1",
            "echo started; sleep 300",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == "started\n"
        time.sleep(1.0)
        assert session.poll() is None  # still let in: it goes on
        assert ada.delete(f"/v1/ssh-keys/{registered['id']}").status_code == 200
        assert session.wait(timeout=20) == 137
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()


def test_a_connection_may_not_try_a_whole_keyring(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    good = keypair(tmp_path, "ada")
    register(ada, good)
    sandbox(ada, "env")
    port = ssh_served.runtime.sandbox_ssh.port
    strays = [str(keypair(tmp_path, f"stray{i}")) for i in range(8)]

    async def attempt(keys: list[str]) -> int | None:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="env",
            client_keys=keys,
            known_hosts=None,
            agent_path=None,
        ) as conn:
            result = await conn.run("exit 5")
            return result.exit_status

    assert asyncio.run(attempt([*strays[:3], str(good)])) == 5
    with pytest.raises((asyncssh.DisconnectError, OSError)):
        asyncio.run(attempt([*strays, str(good)]))


def test_without_an_ssh_port_the_route_says_ssh_is_off(served: ServedApp) -> None:
    caller = served.caller("acme", "ada@example.com", "admin")
    created = caller.post("/v1/sandboxes", json={"name": "env"})
    assert created.status_code == 201, created.text
    response = caller.get("/v1/sandboxes/env/ssh")
    assert response.status_code == 503
    assert "RUNTOOLS_SSH_PORT" in response.json()["error"]["message"]
    assert served.runtime.sandbox_ssh.port is None


def test_sftp_and_scp_reach_what_the_sandbox_user_may(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    if not Path("/usr/lib/openssh/sftp-server").exists() or shutil.which("sftp") is None:
        pytest.skip("needs openssh-sftp-server (scripts/setup dev installs it)")
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "env")
    port = str(ssh_served.runtime.sandbox_ssh.port)
    options = [
        *("-i", str(key), "-F", "/dev/null"),
        *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
        *("-o", "BatchMode=yes", "-o", "LogLevel=ERROR"),
    ]
    local = tmp_path / "hello.txt"
    local.write_text("over sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} /workspace/hello.txt\nls /workspace\n")
    put = subprocess.run(
        ["sftp", *options, "-P", port, "-b", str(batch), "env@127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    read = ada.get("/v1/sandboxes/env/files", params={"path": "/workspace/hello.txt"})
    assert read.content == b"over sftp\n"
    back = tmp_path / "back.txt"
    scp = subprocess.run(
        ["scp", *options, "-P", port, "env@127.0.0.1:/workspace/hello.txt", str(back)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scp.returncode == 0, scp.stderr
    assert back.read_text() == "over sftp\n"
    # Only where the sandbox user may write: not the read-only system, not the host.
    denied = tmp_path / "denied"
    denied.write_text(f"put {local} /etc/hello.txt\n")
    refused_put = subprocess.run(
        ["sftp", *options, "-P", port, "-b", str(denied), "env@127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused_put.returncode != 0
    assert not Path("/etc/hello.txt").exists()
    host_secret = subprocess.run(
        ["scp", *options, "-P", port, "env@127.0.0.1:/etc/shadow", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert host_secret.returncode != 0


def test_an_open_session_keeps_its_sandbox_from_being_paused_as_idle(
    ssh_served: ServedApp, ada: Caller, tmp_path: Path
) -> None:
    key = keypair(tmp_path, "ada")
    register(ada, key)
    sandbox(ada, "env", idleTimeout=1)
    quiet = ssh(ssh_served, key, "env", "sleep 3; echo still here")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "still here\n"
    assert ada.get("/v1/sandboxes/env").json()["data"]["status"] == "running"
    deadline = time.monotonic() + 10
    while ada.get("/v1/sandboxes/env").json()["data"]["status"] != "paused":
        assert time.monotonic() < deadline, "never paused once the session ended"
        time.sleep(0.2)
