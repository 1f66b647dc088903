"""After ``kill -9`` of the service, a restart reconciles records and reaps what is left."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import httpx
import pytest

from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry

pytestmark = pytest.mark.slow


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


def test_restart_marks_lost_sandboxes_failed_and_reaps_orphans(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    key = _bootstrap(server_env, secret_registry)
    live_server.start()
    api = httpx.Client(base_url=live_server.url, headers={"X-API-Key": key}, timeout=60)
    running = api.post("/v1/sandboxes", json={"name": "runner"}).json()["data"]["id"]
    api.post(f"/v1/sandboxes/{running}/exec", json={"command": "sleep 1000 >/dev/null 2>&1 &"})
    paused = api.post("/v1/sandboxes", json={"name": "sleeper"}).json()["data"]["id"]
    assert api.post(f"/v1/sandboxes/{paused}/pause").status_code == 200
    assert _cgroup_dirs(running)
    assert _cgroup_dirs(paused)

    # A sandbox in the service's driver state that no record names.
    root = Path(server_env["RUNTOOLS_HOME"]) / "sandboxes"
    orphan = "sandbox-orphan000001"

    async def make_orphan() -> None:
        await LocalSandboxDriver(root).create(orphan, SandboxSpec())

    anyio.run(make_orphan)
    assert _processes_in(orphan)

    live_server.kill_hard()
    live_server.start()

    for sandbox_id in (running, paused):
        data = api.get(f"/v1/sandboxes/{sandbox_id}").json()["data"]
        assert data["status"] == "failed"
        assert data["statusMessage"] == "the service restarted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        _processes_in(s) or _cgroup_dirs(s) for s in (running, paused, orphan)
    ):
        time.sleep(0.1)
    for sandbox_id in (running, paused, orphan):
        assert _processes_in(sandbox_id) == [], sandbox_id
        assert _cgroup_dirs(sandbox_id) == [], sandbox_id
    assert not [p for p in root.rglob("*") if "sandbox-" in p.name]
    # Failed sandboxes no longer count against the quota, and can be destroyed.
    assert api.delete(f"/v1/sandboxes/{running}").json()["data"]["status"] == "destroyed"
    fresh = api.post("/v1/sandboxes", json={"name": "runner"})
    assert fresh.status_code == 201
    out = api.post(f"/v1/sandboxes/{fresh.json()['data']['id']}/exec", json={"command": "echo ok"})
    assert out.json()["data"]["stdout"] == "ok\n"
    api.close()
