"""A node's memory budget for sandboxes: shared by every organization on it."""

from __future__ import annotations

import threading

import httpx
import pytest

from runtools.server.settings import Settings
from support.served_app import Caller


@pytest.fixture
def sandbox_settings(sandbox_settings: Settings) -> Settings:
    # Room for two default sandboxes (512 MiB each) on this node, whoever asks.
    return sandbox_settings.model_copy(update={"sandbox_memory_budget_mib": 1024})


def error_of(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    return error


def running(caller: Caller) -> list[str]:
    return [s["id"] for s in caller.get("/v1/sandboxes?status=running").json()["data"]]


def test_a_node_never_promises_more_sandbox_memory_than_its_budget(
    ada: Caller, eve: Caller
) -> None:
    too_big = ada.post("/v1/sandboxes", json={"resources": {"memory": 2048}})
    assert too_big.status_code == 400
    assert "(1024 MiB)" in error_of(too_big)["message"]
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def attempt(caller: Caller) -> None:
        headers = {"X-API-Key": caller.key}
        with httpx.Client(base_url=caller.http.base_url, headers=headers, timeout=60) as c:
            barrier.wait()
            statuses.append(c.post("/v1/sandboxes", json={}).status_code)

    # Two organizations at once: the budget is the node's, not an organization's.
    threads = [threading.Thread(target=attempt, args=(c,)) for c in (ada, ada, eve, eve)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 201, 503, 503]
    assert len(running(ada)) + len(running(eve)) == 2  # nothing kept of the refused ones
    full = eve.post("/v1/sandboxes", json={"resources": {"memory": 64}})
    assert full.status_code == 503
    assert error_of(full)["code"] == "sandbox_unavailable"
    assert "no room for a sandbox with 64 MiB" in error_of(full)["message"]
    assert "1024" not in error_of(full)["message"]  # nothing of what others use
    # Destroying a sandbox gives its memory back.
    owner = ada if running(ada) else eve
    assert owner.delete(f"/v1/sandboxes/{running(owner)[0]}").status_code in (200, 204)
    assert eve.post("/v1/sandboxes", json={"resources": {"memory": 512}}).status_code == 201
