"""Commands over real HTTP: whole, streamed, limited, and never at the API's expense."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support.served_app import Caller, ServedApp


def sandbox(caller: Caller, **body: Any) -> str:
    response = caller.post("/v1/sandboxes", json=body)
    assert response.status_code == 201, response.text
    sandbox_id: str = response.json()["data"]["id"]
    return sandbox_id


def run(caller: Caller, sid: str, **body: Any) -> dict[str, Any]:
    response = caller.post(f"/v1/sandboxes/{sid}/exec", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def events(
    caller: Caller, path: str, body: dict[str, Any], **headers: str
) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    with caller.stream("POST", path, json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                assert name is not None, f"data before any event: {line}"
                seen.append((name, json.loads(line[len("data: ") :])))
    return seen


def test_exec_returns_output_exit_code_and_duration(ada: Caller) -> None:
    sid = sandbox(ada)
    data = run(ada, sid, command="echo out; echo err >&2; pwd; exit 3")
    assert data["stdout"] == "out\n/workspace\n"
    assert data["stderr"] == "err\n"
    assert data["exitCode"] == 3
    assert data["durationMs"] >= 0
    assert not data["timedOut"]
    assert not data["stdoutTruncated"]
    assert not data["stderrTruncated"]
    assert run(ada, sid, command="pwd", cwd="/tmp")["stdout"] == "/tmp\n"
    assert run(ada, sid, command="echo $GREETING", env={"GREETING": "hi"})["stdout"] == "hi\n"


def test_timeout_kills_the_command_and_says_so(ada: Caller) -> None:
    sid = sandbox(ada)
    started = time.monotonic()
    data = run(ada, sid, command="(setsid sleep 60 &) ; sleep 60", timeout=500)
    assert data["timedOut"]
    assert time.monotonic() - started < 10
    assert "sleep 60" not in run(ada, sid, command="ps -eo args")["stdout"]


def test_output_is_truncated_and_flagged(served: ServedApp, ada: Caller) -> None:
    cap = served.runtime.settings.sandbox_max_output_bytes
    data = run(ada, sid := sandbox(ada), command="head -c 10000000 /dev/zero | tr '\\0' a")
    assert data["stdoutTruncated"]
    assert len(data["stdout"]) == cap
    assert run(ada, sid, command="echo fine")["stdout"] == "fine\n"


def test_stream_delivers_chunks_as_they_come_then_exit(ada: Caller) -> None:
    sid = sandbox(ada)
    got = events(
        ada,
        f"/v1/sandboxes/{sid}/exec/stream",
        {"command": "echo one; sleep 0.2; echo two >&2; exit 4"},
    )
    assert ("stdout", {"data": "one\n"}) in got
    assert ("stderr", {"data": "two\n"}) in got
    name, last = got[-1]
    assert name == "exit"
    assert last["exitCode"] == 4
    assert not last["timedOut"]


def test_exec_with_accept_event_stream_streams_too(ada: Caller) -> None:
    sid = sandbox(ada)
    got = events(
        ada, f"/v1/sandboxes/{sid}/exec", {"command": "echo hi"}, accept="text/event-stream"
    )
    assert got[0] == ("stdout", {"data": "hi\n"})
    assert got[-1][0] == "exit"


def test_stream_output_arrives_before_the_command_ends(ada: Caller) -> None:
    sid = sandbox(ada)
    started = time.monotonic()
    with ada.stream(
        "POST", f"/v1/sandboxes/{sid}/exec/stream", json={"command": "echo early; sleep 3"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and "early" in line:
                break
    assert time.monotonic() - started < 2.5


def test_stream_refusals_are_plain_error_responses(ada: Caller) -> None:
    sid = sandbox(ada)
    ada.post(f"/v1/sandboxes/{sid}/pause")
    response = ada.post(f"/v1/sandboxes/{sid}/exec/stream", json={"command": "true"})
    assert response.status_code == 409
    assert "resume it first" in response.json()["error"]["message"]


def _fast(served: ServedApp, caller: Caller, path: str) -> float:
    started = time.monotonic()
    response = caller.get(path)
    assert response.status_code == 200
    return time.monotonic() - started


def test_api_keeps_answering_during_a_fork_bomb_and_a_memory_hog(
    served: ServedApp, ada: Caller
) -> None:
    bomb = sandbox(ada, resources={"vcpus": 1, "memory": 128, "disk": 16})
    hog = sandbox(ada, resources={"vcpus": 1, "memory": 64, "disk": 16})
    results: dict[str, dict[str, Any]] = {}

    def attack(name: str, sid: str, command: str, timeout: int) -> None:
        results[name] = run(ada, sid, command=command, timeout=timeout)

    attackers = [
        threading.Thread(target=attack, args=("bomb", bomb, "b() { b | b & }; b; sleep 100", 4000)),
        threading.Thread(
            target=attack,
            args=("hog", hog, "python3 -c \"x = b'a' * (1024 ** 3); print('survived')\"", 20000),
        ),
    ]
    for thread in attackers:
        thread.start()
    worst = 0.0
    while any(t.is_alive() for t in attackers):
        worst = max(worst, _fast(served, ada, "/v1/sandboxes"), _fast(served, ada, "/healthz"))
        time.sleep(0.05)
    assert worst < 1.0, f"the API took {worst:.2f}s to answer"
    assert results["bomb"]["timedOut"]
    assert "survived" not in results["hog"]["stdout"]
    # Both sandboxes still work afterwards.
    assert run(ada, bomb, command="echo ok")["stdout"] == "ok\n"
    assert run(ada, hog, command="echo ok")["stdout"] == "ok\n"


def _cgroup_dirs(sandbox_id: str) -> list[Path]:
    import os

    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found.extend(Path(dirpath) / d for d in dirnames if d == sandbox_id)
    return found


def test_destroy_leaves_no_process_cgroup_or_state(served: ServedApp, ada: Caller) -> None:
    sid = sandbox(ada)
    run(ada, sid, command="sleep 1000 > /dev/null 2>&1 &")
    assert _cgroup_dirs(sid)
    state = served.runtime.settings.sandbox_root
    assert any(sid in str(p) for p in state.rglob("*"))
    assert ada.delete(f"/v1/sandboxes/{sid}").json()["data"]["status"] == "destroyed"
    assert _cgroup_dirs(sid) == []
    assert not any(sid in str(p) for p in state.rglob("*"))
    ps = Path("/proc")
    for proc in ps.iterdir():
        if proc.name.isdigit():
            try:
                cgroup = (proc / "cgroup").read_text()
            except OSError:
                continue
            assert sid not in cgroup


def test_closing_a_stream_kills_the_command_and_audits_it(ada: Caller) -> None:
    sid = sandbox(ada)
    with ada.stream(
        "POST", f"/v1/sandboxes/{sid}/exec/stream", json={"command": "echo go; exec sleep 77"}
    ) as response:
        for line in response.iter_lines():
            if "go" in line:
                break
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "sleep 77" not in run(ada, sid, command="ps -eo args")["stdout"]:
            break
        time.sleep(0.1)
    assert "sleep 77" not in run(ada, sid, command="ps -eo args")["stdout"]
    events = ada.get("/v1/audit-logs?action=sandbox.exec").json()["data"]
    assert any(e["details"]["command"] == "echo go; exec sleep 77" for e in events)


@pytest.mark.parametrize(
    "body",
    [
        {"command": "echo \u0000"},
        {"command": "pwd", "cwd": "/workspace\u0000"},
        {"command": "env", "env": {"TOKEN": "a\u0000b"}},
    ],
)
def test_a_nul_character_anywhere_in_an_exec_is_a_validation_error(
    ada: Caller, body: dict[str, object]
) -> None:
    sid = sandbox(ada)
    response = ada.post(f"/v1/sandboxes/{sid}/exec", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"  # as for any other body
