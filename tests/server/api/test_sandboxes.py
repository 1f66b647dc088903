"""Sandbox lifecycle over real HTTP, with real isolation underneath."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from support.served_app import Caller, ServedApp


def create(caller: Caller, **body: Any) -> dict[str, Any]:
    response = caller.post("/v1/sandboxes", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["requestId"] == response.headers["x-request-id"]
    error: dict[str, str] = body["error"]
    return error


def test_create_returns_a_running_sandbox_with_wire_fields(ada: Caller) -> None:
    data = create(
        ada,
        name="my-env",
        tags=["ci", "team=web"],
        env={"TOKEN": "s3cr3t-value"},
        idleTimeout=600,
        resources={"vcpus": 1, "memory": 256, "disk": 64},
    )
    assert data["id"].startswith("sandbox-")
    assert len(data["id"]) == len("sandbox-") + 12
    assert data["name"] == "my-env"
    assert data["template"] == "base-ubuntu"
    assert data["status"] == "running"
    assert data["tags"] == ["ci", "team=web"]
    assert data["mounts"] == []
    assert data["projectId"] is None
    assert data["envKeys"] == ["TOKEN"]
    assert data["resources"] == {"vcpus": 1.0, "memory": 256, "disk": 64}
    assert data["idleTimeout"] == 600
    assert data["createdAt"]
    # The value reached the sandbox, and no response ever carries it.
    run = ada.post(f"/v1/sandboxes/{data['id']}/exec", json={"command": "echo $TOKEN"})
    assert run.json()["data"]["stdout"] == "s3cr3t-value\n"
    for later in (ada.get(f"/v1/sandboxes/{data['id']}"), ada.get("/v1/sandboxes")):
        assert "s3cr3t-value" not in later.text


def test_create_with_no_body_at_all_takes_every_default(ada: Caller) -> None:
    response = ada.post("/v1/sandboxes")  # every field is optional: no body is {}
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["template"] == "base-ubuntu"
    assert data["status"] == "running"


def test_a_name_works_wherever_an_id_does(ada: Caller) -> None:
    created = create(ada, name="by-name")
    assert ada.get("/v1/sandboxes/by-name").json()["data"]["id"] == created["id"]
    assert ada.post("/v1/sandboxes/by-name/pause").json()["data"]["status"] == "paused"
    assert ada.post("/v1/sandboxes/by-name/resume").json()["data"]["status"] == "running"
    assert ada.delete("/v1/sandboxes/by-name").json()["data"]["status"] == "destroyed"
    # A destroyed sandbox's name is free again.
    again = create(ada, name="by-name")
    assert again["id"] != created["id"]
    assert ada.get("/v1/sandboxes/by-name").json()["data"]["id"] == again["id"]


def test_names_are_unique_among_live_sandboxes(ada: Caller) -> None:
    create(ada, name="twin")
    response = ada.post("/v1/sandboxes", json={"name": "twin"})
    assert response.status_code == 409
    assert "already exists" in error_of(response)["message"]


def test_bad_input_is_a_400_in_the_envelope(ada: Caller) -> None:
    for body in (
        {"name": "sandbox-looks-like-an-id"},
        {"name": "has space"},
        {"template": "windows-11"},
        {"env": {"1BAD": "x"}},
        {"resources": {"memory": 1}},
        {"idleTimeout": 0},
        {"sshKeys": ["ssh-ed25519 AAAA"]},
        {"surprise": True},
        {"projectId": "not-a-uuid"},
    ):
        response = ada.post("/v1/sandboxes", json=body)
        assert response.status_code == 400, (body, response.text)
        assert error_of(response)["code"] in {"invalid_request", "validation_error"}
    assert ada.get("/v1/sandboxes").json()["data"] == []


def test_state_machine_refuses_impossible_transitions_with_advice(ada: Caller) -> None:
    sid = create(ada, name="states")["id"]
    assert ada.post(f"/v1/sandboxes/{sid}/pause").status_code == 200
    paused_exec = ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "true"})
    assert paused_exec.status_code == 409
    assert error_of(paused_exec)["code"] == "conflict"
    assert "resume it first" in error_of(paused_exec)["message"]
    files = ada.get(f"/v1/sandboxes/{sid}/files/list")
    assert files.status_code == 409
    assert "resume it first" in files.text
    assert "already paused" in error_of(ada.post(f"/v1/sandboxes/{sid}/pause"))["message"]
    assert ada.post(f"/v1/sandboxes/{sid}/resume").status_code == 200
    assert "nothing to resume" in error_of(ada.post(f"/v1/sandboxes/{sid}/resume"))["message"]
    assert ada.delete(f"/v1/sandboxes/{sid}").status_code == 200
    gone = ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "true"})
    assert gone.status_code == 409
    assert "create a new sandbox" in error_of(gone)["message"]
    assert "already destroyed" in error_of(ada.delete(f"/v1/sandboxes/{sid}"))["message"]
    assert ada.post(f"/v1/sandboxes/{sid}/resume").status_code == 409


def test_pause_and_resume_keep_a_background_process_alive(ada: Caller) -> None:
    sid = create(ada)["id"]
    start = "sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done' &"
    assert ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": start}).status_code == 200
    ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "sleep 0.3"})
    ada.post(f"/v1/sandboxes/{sid}/pause")
    ada.post(f"/v1/sandboxes/{sid}/resume")
    first = ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "cat /tmp/n"}).json()
    ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "sleep 0.3"})
    second = ada.post(f"/v1/sandboxes/{sid}/exec", json={"command": "cat /tmp/n"}).json()
    assert int(second["data"]["stdout"]) > int(first["data"]["stdout"]) > 0


def test_scopes_are_enforced_per_action(served: ServedApp, ada: Caller) -> None:
    sid = create(ada, name="scoped")["id"]
    reader = served.caller("acme", "ada@example.com", scopes=["sandbox:read"])
    assert reader.get(f"/v1/sandboxes/{sid}").status_code == 200
    assert reader.get("/v1/sandboxes").status_code == 200
    for response, scope in (
        (reader.post(f"/v1/sandboxes/{sid}/exec", json={"command": "id"}), "sandbox:exec"),
        (reader.post(f"/v1/sandboxes/{sid}/exec/stream", json={"command": "id"}), "sandbox:exec"),
        (reader.get(f"/v1/sandboxes/{sid}/files?path=a"), "sandbox:exec"),
        (reader.put(f"/v1/sandboxes/{sid}/files?path=a", content=b"x"), "sandbox:exec"),
        (reader.post(f"/v1/sandboxes/{sid}/pause"), "sandbox:write"),
        (reader.delete(f"/v1/sandboxes/{sid}"), "sandbox:write"),
        (reader.post("/v1/sandboxes", json={}), "sandbox:create"),
    ):
        assert response.status_code == 403
        assert error_of(response)["message"] == f"This call requires scope {scope}"
    runner = served.caller("acme", "ada@example.com", scopes=["sandbox:exec"])
    assert runner.post(f"/v1/sandboxes/{sid}/exec", json={"command": "true"}).status_code == 200
    assert runner.get(f"/v1/sandboxes/{sid}").status_code == 403
    everything = served.caller("acme", "ada@example.com", scopes=["sandbox:*"])
    assert everything.post(f"/v1/sandboxes/{sid}/pause").status_code == 200


def test_another_orgs_sandbox_is_not_found_by_id_or_name(ada: Caller, eve: Caller) -> None:
    sid = create(ada, name="private")["id"]
    for ref in (sid, "private"):
        for response in (
            eve.get(f"/v1/sandboxes/{ref}"),
            eve.post(f"/v1/sandboxes/{ref}/exec", json={"command": "true"}),
            eve.get(f"/v1/sandboxes/{ref}/files?path=x"),
            eve.post(f"/v1/sandboxes/{ref}/pause"),
            eve.delete(f"/v1/sandboxes/{ref}"),
        ):
            assert response.status_code == 404, response.text
            assert error_of(response)["code"] == "not_found"
    assert eve.get("/v1/sandboxes?all=true").json()["data"] == []
    # Eve's own sandbox may reuse the name: names are per organization.
    assert create(eve, name="private")["id"] != sid


def test_members_see_their_own_and_admins_all_with_all_true(ada: Caller, bob: Caller) -> None:
    mine = create(bob, name="bobs")["id"]
    theirs = create(ada, name="adas")["id"]
    assert [s["id"] for s in bob.get("/v1/sandboxes").json()["data"]] == [mine]
    assert bob.get(f"/v1/sandboxes/{theirs}").status_code == 404
    assert bob.post(f"/v1/sandboxes/{theirs}/exec", json={"command": "true"}).status_code == 404
    assert bob.get("/v1/sandboxes?all=true").status_code == 403
    assert [s["id"] for s in ada.get("/v1/sandboxes").json()["data"]] == [theirs]
    every = {s["id"] for s in ada.get("/v1/sandboxes?all=true").json()["data"]}
    assert every == {mine, theirs}
    assert ada.get(f"/v1/sandboxes/{mine}").status_code == 200


def test_list_filters_and_pages(ada: Caller) -> None:
    a = create(ada, name="a", tags=["web", "ci"])["id"]
    b = create(ada, name="b", tags=["web"])["id"]
    c = create(ada, name="c")["id"]
    ada.post(f"/v1/sandboxes/{c}/pause")

    def ids(query: str) -> list[str]:
        response = ada.get(f"/v1/sandboxes{query}")
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["data"]]

    assert ids("") == [c, b, a]
    assert ids("?tags=web") == [b, a]
    assert ids("?tags=web,ci") == [a]
    assert ids("?status=paused") == [c]
    assert ids("?status=running,paused&template=base-ubuntu") == [c, b, a]
    assert ids("?template=other") == []
    first = ada.get("/v1/sandboxes?limit=2").json()
    assert [s["id"] for s in first["data"]] == [c, b]
    assert first["meta"]["hasMore"]
    rest = ids(f"?limit=2&cursor={first['meta']['nextCursor']}")
    assert rest == [a]
    for bad in ("?status=sleeping", "?cursor=nonsense", "?limit=0"):
        response = ada.get(f"/v1/sandboxes{bad}")
        assert response.status_code == 400
        assert error_of(response)


def test_quota_holds_under_concurrent_creates(served: ServedApp, ada: Caller) -> None:
    quota = served.runtime.settings.sandbox_quota
    statuses: list[int] = []
    barrier = threading.Barrier(quota + 3)

    def attempt() -> None:
        with httpx.Client(base_url=served.url, headers={"X-API-Key": ada.key}, timeout=60) as c:
            barrier.wait()
            statuses.append(c.post("/v1/sandboxes", json={}).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(quota + 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * quota + [403] * 3
    live = ada.get("/v1/sandboxes?status=running").json()["data"]
    assert len(live) == quota
    over = ada.post("/v1/sandboxes", json={})
    assert error_of(over)["code"] == "quota_exceeded"
    assert "destroy one" in over.text
    # Destroying one frees a place.
    ada.delete(f"/v1/sandboxes/{live[0]['id']}")
    assert ada.post("/v1/sandboxes", json={}).status_code == 201


def test_audit_log_records_create_exec_destroy_without_secrets(ada: Caller) -> None:
    sid = create(ada, env={"API_TOKEN": "tok-123456"})["id"]
    ada.post(
        f"/v1/sandboxes/{sid}/exec",
        json={"command": "echo output-$X", "env": {"X": "env-secret"}},
    )
    ada.delete(f"/v1/sandboxes/{sid}")
    events = ada.get("/v1/audit-logs?limit=100").json()["data"]
    mine = [e for e in events if e.get("targetId") == sid]
    assert {e["action"] for e in mine} >= {"sandbox.created", "sandbox.exec", "sandbox.destroyed"}
    text = str(mine)
    assert "tok-123456" not in text
    assert "env-secret" not in text
    exec_event = next(e for e in mine if e["action"] == "sandbox.exec")
    assert exec_event["details"]["envKeys"] == ["X"]
    assert exec_event["details"]["exitCode"] == 0
    assert "output-" not in str(exec_event["details"].get("stdout", ""))
