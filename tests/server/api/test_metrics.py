"""``/metrics``: absent unless enabled, token-protected when a token is set, and telling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtools.server.app import create_app, runtime_of
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants, tampered


def _client(tmp_path: Path, database_url: str | None, **settings: Any) -> Iterator[TestClient]:
    app = create_app(
        Settings(home=tmp_path / "home", database_url=database_url, _env_file=None, **settings)
    )
    yield TestClient(app, raise_server_exceptions=False)
    runtime_of(app).close()


@pytest.fixture
def scraped(tmp_path: Path, database_url: str | None) -> Iterator[TestClient]:
    yield from _client(tmp_path, database_url, metrics="on", metrics_token="s3cret-token")


def test_metrics_are_off_by_default_and_look_like_an_unknown_route(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_a_token_protects_metrics_when_set(scraped: TestClient) -> None:
    assert scraped.get("/metrics").status_code == 401
    wrong = scraped.get("/metrics", headers={"Authorization": "Bearer s3cret-tokem"})
    assert wrong.status_code == 401
    ok = scraped.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    for pair in (["Bearer s3cret-token", "Bearer wrong"], ["Bearer wrong", "Bearer s3cret-token"]):
        twice = scraped.get("/metrics", headers=[("Authorization", value) for value in pair])
        assert twice.status_code == 401
    assert ok.headers["content-type"].startswith("text/plain")


def test_metrics_count_requests_auth_failures_cache_hits_and_refusals(
    scraped: TestClient, secret_registry: SecretRegistry
) -> None:
    assert isinstance(scraped.app, FastAPI)
    runtime = runtime_of(scraped.app)
    admin = Tenants(runtime, scraped, secret_registry).member("acme", "ada@example.com", "admin")
    for _ in range(3):
        admin.get("/v1/me")
    scraped.get("/v1/me", headers={"X-API-Key": "rt_live_not-even-well-formed"})
    slow = admin.create_key(secret_registry, rateLimit=1)
    for _ in range(2):
        scraped.get("/v1/me", headers={"X-API-Key": slow["key"]})
    text = scraped.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).text
    assert 'runtools_requests_total{method="GET",route="/v1/me",status="200"} 4.0' in text
    assert 'runtools_auth_failures_total{reason="malformed"} 1.0' in text
    assert 'runtools_rate_limited_total{limited="credential"} 1.0' in text
    assert 'runtools_auth_cache_lookups_total{result="hit"}' in text
    assert 'runtools_request_duration_seconds_bucket{le="0.005",route="/v1/me"}' in text
    assert "s3cret-token" not in text
    assert admin.key not in text


def test_security_events_are_json_log_lines_without_secrets(
    admin: Member, secret_registry: SecretRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    narrow = admin.create_key(secret_registry, scopes=["sandbox:read"])
    with caplog.at_level("INFO", logger="runtools.security"):
        admin.http.get("/v1/api-keys", headers={"X-API-Key": narrow["key"]})
        admin.http.get("/v1/me", headers={"X-API-Key": tampered(narrow["key"])})
        admin.delete(f"/v1/api-keys/{narrow['id']}")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "runtools.security"]
    events = [(line["event"], line.get("reason")) for line in lines]
    assert ("authz.denied", "requires scope *") in events
    assert ("auth.failed", "malformed") in events
    assert ("credential.key_revoked", None) in events
    assert all(narrow["key"] not in json.dumps(line) for line in lines)
