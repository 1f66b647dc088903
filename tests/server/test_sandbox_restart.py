"""Sandboxes outlive the service: a stop, a crash or a lost worker leaves them as they were.

Real ``runtools serve`` processes and real sandboxes. These servers run with
the default (sandboxes outlive the service); the rest of the suite ends its
sandboxes with its servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from support.disks import host_mounts_naming, wait_no_loop_device
from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry

pytestmark = pytest.mark.slow

# A file and a web server left running in the background, then asked for the file.
SERVE = "echo kept > marker.txt; python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 &"
ASK = (
    'python3 -c "import urllib.request as u, time\n'
    "for _ in range(50):\n"
    "    try: print(u.urlopen('http://127.0.0.1:8080/marker.txt').read().decode(), end=''); break\n"
    '    except OSError: time.sleep(0.1)"'
)


@pytest.fixture
def outliving_env(server_env: dict[str, str]) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    env = dict(server_env)
    env.pop("RUNTOOLS_SANDBOX_STOP_WITH_SERVICE")  # the default: sandboxes outlive the service
    # A uid range of its own, as a second service on one host needs: other tests'
    # sandboxes run beside these, and a destroy clears what its uid left behind.
    env["RUNTOOLS_SANDBOX_UID_BASE"] = "340000"
    return env


@pytest.fixture
def server(outliving_env: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    node = LiveServer(env=outliving_env, log_path=tmp_path / "server.log")
    yield node
    node.stop()
    # Nothing of the test may outlive it: end its sandboxes on purpose.
    runtools("admin", "sandboxes", "drain", "--yes", env=outliving_env, check=False)


def _bootstrap(env: dict[str, str], registry: SecretRegistry) -> str:
    runtools("admin", "create-org", "acme", env=env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin", env=env)
    out = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "boot",
        "--json", env=env,
    )  # fmt: skip
    return str(registry.add(json.loads(out.stdout)["key"]))


def _cgroup_dirs(sandbox_id: str) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found.extend(Path(dirpath) / d for d in dirnames if d == sandbox_id)
    return found


def _processes_in(sandbox_id: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"/{sandbox_id}/" in (proc / "cgroup").read_text():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _run(api: httpx.Client, sandbox: str, command: str) -> str:
    reply = api.post(f"/v1/sandboxes/{sandbox}/exec", json={"command": command})
    assert reply.status_code == 200, reply.text
    stdout: str = reply.json()["data"]["stdout"]
    return stdout


def _nothing_left_of(sandbox_ids: list[str], state_root: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        _processes_in(s) or _cgroup_dirs(s) for s in sandbox_ids
    ):
        time.sleep(0.1)
    for sandbox_id in sandbox_ids:
        assert _processes_in(sandbox_id) == [], sandbox_id
        assert _cgroup_dirs(sandbox_id) == [], sandbox_id
        assert not (state_root / sandbox_id).exists(), sandbox_id
        # Its disk: the image went with its state, the mount with its
        # namespace, the loop device with the mount.
        assert wait_no_loop_device(sandbox_id) == [], sandbox_id
        assert host_mounts_naming(sandbox_id) == [], sandbox_id


def test_a_stop_and_a_crash_of_the_service_leave_every_sandbox_as_it_was(
    server: LiveServer, outliving_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    key = _bootstrap(outliving_env, secret_registry)
    server.start()
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60)
    running = api.post("/v1/sandboxes", json={"name": "web"}).json()["data"]["id"]
    _run(api, running, SERVE)
    assert _run(api, running, ASK) == "kept\n"
    paused = api.post("/v1/sandboxes", json={"name": "sleeper"}).json()["data"]["id"]
    _run(api, paused, "echo before > note.txt")
    assert api.post(f"/v1/sandboxes/{paused}/pause").json()["data"]["status"] == "paused"
    processes = sorted(_processes_in(running))

    for ending in ("SIGTERM", "SIGKILL"):
        if ending == "SIGTERM":
            server.stop()
        else:
            server.kill_hard()
        # While no service runs, the sandboxes do.
        assert sorted(_processes_in(running)) == processes
        server.start()
        assert api.get(f"/v1/sandboxes/{running}").json()["data"]["status"] == "running"
        assert _run(api, running, "cat marker.txt") == "kept\n"
        assert _run(api, running, ASK) == "kept\n"  # the same web server, still answering
        assert api.get(f"/v1/sandboxes/{paused}").json()["data"]["status"] == "paused"

    resumed = api.post(f"/v1/sandboxes/{paused}/resume")
    assert resumed.json()["data"]["status"] == "running"
    assert _run(api, paused, "cat note.txt") == "before\n"
    # Nothing was reported failed along the way.
    failed = api.get("/v1/audit-logs", params={"action": "sandbox.failed"}).json()["data"]
    assert failed == []
    api.close()


def test_a_sandbox_that_died_while_the_service_was_down_is_failed_and_reaped(
    server: LiveServer, outliving_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    key = _bootstrap(outliving_env, secret_registry)
    server.start()
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60)
    doomed = api.post("/v1/sandboxes", json={"name": "doomed"}).json()["data"]["id"]
    kept = api.post("/v1/sandboxes", json={"name": "kept"}).json()["data"]["id"]
    _run(api, doomed, "sleep 1000 >/dev/null 2>&1 &")

    # A sandbox in the driver's state that no record names.
    state_root = Path(outliving_env["RUNTOOLS_HOME"]) / "sandboxes"
    orphan = "sandbox-orphan000001"

    async def make_orphan() -> None:
        await LocalSandboxDriver(state_root).create(orphan, SandboxSpec())

    anyio.run(make_orphan)
    assert _processes_in(orphan)

    server.stop()
    for pid in _processes_in(doomed):
        with contextlib.suppress(ProcessLookupError):  # gone with its PID namespace
            os.kill(pid, signal.SIGKILL)
    server.start()

    data = api.get(f"/v1/sandboxes/{doomed}").json()["data"]
    assert data["status"] == "failed"
    assert data["statusMessage"] == "its processes ended while the service was stopped"
    _nothing_left_of([doomed, orphan], state_root)
    assert _run(api, kept, "echo alive") == "alive\n"
    failed = api.get("/v1/audit-logs", params={"action": "sandbox.failed"}).json()["data"]
    assert [e["targetId"] for e in failed] == [doomed]

    # Destroying them all is an operator's explicit act.
    drained = runtools("admin", "sandboxes", "drain", "--yes", "--json", env=outliving_env)
    assert json.loads(drained.stdout)["destroyed"] == [kept]
    assert api.get(f"/v1/sandboxes/{kept}").json()["data"]["status"] == "destroyed"
    _nothing_left_of([kept], state_root)
    audited = api.get("/v1/audit-logs", params={"action": "sandbox.destroyed"}).json()["data"]
    assert [(e["targetId"], e["actorType"]) for e in audited] == [(kept, "system")]
    api.close()


def test_a_worker_that_crashes_takes_no_sandbox_with_it(
    outliving_env: dict[str, str],
    database_url: str | None,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    if database_url is None:
        pytest.skip("--workers 2 needs PostgreSQL: set RUNTOOLS_TEST_DATABASE_URL")
    env = {
        **outliving_env,
        "RUNTOOLS_REDIS_URL": "redis://127.0.0.1:6379/0",
        "RUNTOOLS_SANDBOX_UID_BASE": "350000",
    }
    key = _bootstrap(env, secret_registry)
    node = LiveServer(env=env, log_path=tmp_path / "node.log", extra_args=("--workers", "2"))
    node.start()
    try:
        api = httpx.Client(base_url=node.url, headers={"X-API-Key": key}, timeout=60)
        made = [
            api.post("/v1/sandboxes", json={"name": f"w{i}"}).json()["data"]["id"] for i in range(4)
        ]
        for sandbox_id in made:
            _run(api, sandbox_id, SERVE)
        assert node.process is not None
        workers = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit()
            and _parent_of(int(p.name)) == node.process.pid
            and b"spawn_main" in (p / "cmdline").read_bytes()
        ]
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(2)  # the manager starts a new worker, which reconciles on start
        for _ in range(3):  # each worker in turn, the new one included
            for sandbox_id in made:
                assert _run(api, sandbox_id, ASK) == "kept\n"
        statuses = {api.get(f"/v1/sandboxes/{s}").json()["data"]["status"] for s in made}
        assert statuses == {"running"}
        api.close()
    finally:
        node.stop()
        runtools("admin", "sandboxes", "drain", "--yes", env=env, check=False)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])
