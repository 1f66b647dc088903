"""``idleTimeout``: an idle sandbox is paused by the service, a busy one is not."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from runtools.server.settings import Settings
from support.served_app import Caller


@pytest.fixture
def sandbox_settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        sandbox_idle_check_seconds=0.2,
        _env_file=None,
    )


def _status(caller: Caller, sid: str) -> str:
    return str(caller.get(f"/v1/sandboxes/{sid}").json()["data"]["status"])


def _wait_for(caller: Caller, sid: str, status: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _status(caller, sid) == status:
            return True
        time.sleep(0.1)
    return False


def test_idle_sandbox_is_paused_and_a_busy_one_is_not(ada: Caller) -> None:
    idle = ada.post("/v1/sandboxes", json={"idleTimeout": 1}).json()["data"]["id"]
    busy = ada.post("/v1/sandboxes", json={"idleTimeout": 1}).json()["data"]["id"]
    forever = ada.post("/v1/sandboxes", json={}).json()["data"]["id"]
    # A command longer than the timeout keeps its sandbox running throughout.
    ran = ada.post(f"/v1/sandboxes/{busy}/exec", json={"command": "sleep 2.5; echo done"})
    assert ran.json()["data"]["stdout"] == "done\n"
    assert _status(ada, idle) == "paused"
    assert _wait_for(ada, busy, "paused", within=3)
    assert _status(ada, forever) == "running"
    # Resuming counts as activity: it is not paused again at once.
    assert ada.post(f"/v1/sandboxes/{idle}/resume").json()["data"]["status"] == "running"
    time.sleep(0.5)
    assert _status(ada, idle) == "running"
    events = ada.get("/v1/audit-logs?action=sandbox.paused").json()["data"]
    system = [e for e in events if e["targetId"] == idle]
    assert system
    assert system[0]["actorType"] == "system"
    assert system[0]["details"]["idle"]


def _kill_init(sandbox_id: str) -> None:
    """What an out-of-memory kill of the sandbox's own processes looks like."""
    for procs in Path("/sys/fs/cgroup").glob(f"**/{sandbox_id}/init/cgroup.procs"):
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_a_sandbox_whose_processes_died_is_failed_without_being_touched(ada: Caller) -> None:
    sid = ada.post("/v1/sandboxes", json={}).json()["data"]["id"]
    _kill_init(sid)
    # Found by the service's own round, not by a request to the sandbox: until then
    # it held its organization's quota and the node's memory.
    assert _wait_for(ada, sid, "failed", within=5), _status(ada, sid)
    record = ada.get(f"/v1/sandboxes/{sid}").json()["data"]
    assert "exited unexpectedly" in record["statusMessage"]
