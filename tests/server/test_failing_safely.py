"""When PostgreSQL or Redis goes away mid-run: fail closed, keep serving what is safe, recover.

Private servers, started by the test and stopped under a running service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from runtools.server.api.health import COUNTERS_DOWN, EVENT_LINK_DOWN
from support.live_server import LiveServer, runtools
from support.private_services import PrivatePostgres, PrivateRedis
from support.secret_registry import SecretRegistry


def _bootstrap(env: dict[str, str], registry: SecretRegistry) -> str:
    runtools("admin", "create-org", "acme", env=env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin", env=env)
    out = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "boot",
        "--json", env=env,
    )  # fmt: skip
    return str(registry.add(json.loads(out.stdout)["key"]))


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def _status(url: str, key: str | None = None) -> int:
    headers = {"X-API-Key": key} if key else {}
    try:
        return httpx.get(url, headers=headers, timeout=15).status_code
    except httpx.TransportError:
        return -1


@pytest.mark.slow
def test_database_outage_is_503_everywhere_then_recovers_without_restart(
    tmp_path: Path, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    postgres = PrivatePostgres().init().start()
    env = {**server_env, "RUNTOOLS_DATABASE_URL": postgres.url}
    server = LiveServer(env=env, log_path=tmp_path / "server.log")
    try:
        admin_key = _bootstrap(env, secret_registry)
        server.start()
        base, headers = server.url, {"X-API-Key": admin_key}
        fresh = httpx.post(f"{base}/v1/api-keys", headers=headers, json={"name": "fresh"})
        fresh_key = secret_registry.add(fresh.json()["data"]["key"])
        assert _status(f"{base}/v1/me", admin_key) == 200  # cached from here on

        postgres.stop()
        unverified = httpx.get(f"{base}/v1/me", headers={"X-API-Key": fresh_key}, timeout=15)
        assert unverified.status_code == 503
        assert unverified.json()["error"]["code"] == "service_unavailable"
        assert _status(f"{base}/v1/api-keys", admin_key) == 503
        assert _status(f"{base}/readyz") == 503
        # The event link went down with the database: cached keys are no longer trusted.
        _eventually(lambda: _status(f"{base}/v1/me", admin_key) == 503)
        refused = httpx.post(f"{base}/v1/api-keys", headers=headers, json={"name": "x"})
        assert refused.status_code == 503
        assert "Traceback" not in refused.text

        postgres.start()
        _eventually(lambda: _status(f"{base}/v1/me", fresh_key) == 200)
        assert _status(f"{base}/v1/api-keys", admin_key) == 200
        assert _status(f"{base}/readyz") == 200
        # The outage is two lines in the log, whatever retried meanwhile; no traceback.
        log = (tmp_path / "server.log").read_text()
        said = [json.loads(line) for line in log.splitlines() if '"event": "database"' in line]
        assert [line["available"] for line in said] == [False, True], said
        assert said[0]["reason"].startswith("OperationalError")
        assert "Traceback" not in log
    finally:
        server.stop()
        postgres.remove()


@pytest.mark.slow
def test_redis_outage_keeps_limits_per_node_and_revocation_local_then_recovers(
    tmp_path: Path, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    redis_server = PrivateRedis(tmp_path / "redis").start()
    env = {
        **server_env,
        "RUNTOOLS_REDIS_URL": redis_server.url,
        "RUNTOOLS_METRICS": "on",
    }
    server = LiveServer(env=env, log_path=tmp_path / "server.log")
    try:
        admin_key = _bootstrap(env, secret_registry)
        server.start()
        base, headers = server.url, {"X-API-Key": admin_key}

        def link_up() -> bool:
            return "runtools_event_link_up 1.0" in httpx.get(f"{base}/metrics").text

        _eventually(link_up)
        made = httpx.post(
            f"{base}/v1/api-keys", headers=headers, json={"name": "k", "rateLimit": 3}
        )
        key = secret_registry.add(made.json()["data"]["key"])

        redis_server.stop()
        answers = [httpx.get(f"{base}/v1/me", headers={"X-API-Key": key}) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]  # counted per node
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        _eventually(lambda: not link_up())
        readiness = httpx.get(f"{base}/readyz").json()["data"]
        assert readiness["status"] == "degraded"
        assert set(readiness["reasons"]) == {COUNTERS_DOWN, EVENT_LINK_DOWN}
        assert _status(f"{base}/readyz?strict=true") == 503
        revoked = httpx.delete(f"{base}/v1/api-keys/{made.json()['data']['id']}", headers=headers)
        assert revoked.status_code == 200
        assert _status(f"{base}/v1/me", key) == 401

        redis_server.start()
        _eventually(link_up)
        # Shared counters again: a fresh Redis starts this key's window from zero.
        assert httpx.get(f"{base}/v1/me", headers=headers).headers["X-RateLimit-Remaining"] != ""
        _eventually(lambda: _status(f"{base}/v1/me", admin_key) == 200)
        assert httpx.get(f"{base}/readyz").json()["data"] == {"status": "ready", "reasons": []}
    finally:
        server.stop()
        redis_server.stop()
