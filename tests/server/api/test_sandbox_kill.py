"""A sandbox at its process limit over HTTP: a 409 that says how to recover, and ``…/kill``."""

from __future__ import annotations

import time

from support.process_filler import FILL_COMMAND
from support.served_app import Caller, ServedApp

DEFAULT_PIDS = 256


def new_sandbox(caller: Caller, name: str) -> str:
    response = caller.post("/v1/sandboxes", json={"name": name})
    assert response.status_code == 201, response.text
    sandbox_id: str = response.json()["data"]["id"]
    return sandbox_id


def fill(caller: Caller, name: str) -> dict[str, str]:
    """Fill the sandbox's process limit; the first refusal's error body."""
    started = caller.post(f"/v1/sandboxes/{name}/exec", json={"command": FILL_COMMAND})
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = caller.post(f"/v1/sandboxes/{name}/exec", json={"command": "true"})
        if response.status_code == 409:
            error: dict[str, str] = response.json()["error"]
            return error
        assert response.status_code == 200, response.text
        time.sleep(0.1)
    raise AssertionError("the sandbox never reached its process limit")


def test_a_full_sandbox_is_a_409_naming_the_limit_and_kill_brings_it_back(ada: Caller) -> None:
    sid = new_sandbox(ada, "bombed")
    put = ada.put("/v1/sandboxes/bombed/files?path=notes.txt", content=b"kept\n")
    assert put.status_code == 200, put.text

    error = fill(ada, "bombed")
    assert error["code"] == "process_limit_reached"
    assert f"limit of {DEFAULT_PIDS} processes" in error["message"]
    assert "POST /v1/sandboxes/bombed/kill" in error["message"]
    assert "runtools sandbox kill bombed" in error["message"]
    assert "files are kept" in error["message"]
    assert error["requestId"].startswith("req_")
    # The streamed form refuses before any event, the same way.
    streamed = ada.post("/v1/sandboxes/bombed/exec/stream", json={"command": "true"})
    assert streamed.status_code == 409
    assert streamed.json()["error"]["code"] == "process_limit_reached"

    killed = ada.post("/v1/sandboxes/bombed/kill")
    assert killed.status_code == 200, killed.text
    assert killed.json()["data"]["id"] == sid
    assert killed.json()["data"]["status"] == "running"

    r = ada.post("/v1/sandboxes/bombed/exec", json={"command": "cat notes.txt"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["stdout"] == "kept\n"

    events = ada.get("/v1/audit-logs?limit=100").json()["data"]
    kills = [e for e in events if e["action"] == "sandbox.processes_killed"]
    assert [e["targetId"] for e in kills] == [sid]
    assert kills[0]["details"]["name"] == "bombed"


def test_kill_needs_the_exec_scope_and_the_sandbox(
    served: ServedApp, ada: Caller, bob: Caller, eve: Caller
) -> None:
    new_sandbox(ada, "mine")
    reader = served.caller("acme", "ada@example.com", scopes=["sandbox:read", "sandbox:write"])
    refused = reader.post("/v1/sandboxes/mine/kill")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"].endswith("requires scope sandbox:exec")
    # Another member's sandbox, another organization's: not found.
    assert bob.post("/v1/sandboxes/mine/kill").status_code == 404
    assert eve.post("/v1/sandboxes/mine/kill").status_code == 404
    assert ada.post("/v1/sandboxes/nosuch/kill").status_code == 404


def test_a_paused_sandbox_is_resumed_before_its_processes_are_killed(ada: Caller) -> None:
    new_sandbox(ada, "frozen")
    assert ada.post("/v1/sandboxes/frozen/pause").status_code == 200
    response = ada.post("/v1/sandboxes/frozen/kill")
    assert response.status_code == 409
    assert "resume it first" in response.json()["error"]["message"]
