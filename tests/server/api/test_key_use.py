"""Where a key may be used from, and honeytokens: ``allowBrowser``, ``allowedCidrs``, ``isCanary``.

The caller's address is what ``X-Forwarded-For`` names (the app trusts it
here, as behind a proxy); one test runs the app on a real socket instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from runtools.server.store.models import AuditEvent
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve
from support.tenants import Member


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, trust_forwarded_for=True, _env_file=None
    )


def _from(key: str, address: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": key, "X-Forwarded-For": address, **headers}


def _events(runtime: Runtime, key_id: str) -> list[AuditEvent]:
    runtime.flush()
    with runtime.database.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.target_id == key_id).order_by(AuditEvent.id)
            )
        )


def _assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.json()["error"]["message"] == "Invalid or missing authentication"


# -- browsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "browser", [{"Origin": "https://app.example.com"}, {"Sec-Fetch-Site": "cross-site"}]
)
def test_a_key_sent_by_a_browser_is_a_403_that_says_why(
    admin: Member, runtime: Runtime, secret_registry: SecretRegistry, browser: dict[str, str]
) -> None:
    key = admin.create_key(secret_registry, name="server-side")
    assert key["allowBrowser"] is False
    for _ in range(2):  # the second from the verification cache: refused all the same
        refused = admin.http.get("/v1/me", headers={"X-API-Key": key["key"], **browser})
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "forbidden"
        assert "browser" in error["message"]
        assert "allowBrowser: true" in error["message"]
    assert admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).status_code == 200
    denials = [e for e in _events(runtime, key["id"]) if e.action == "authz.denied"]
    assert [e.reason for e in denials] == ["sent_from_browser"] * 2


def test_a_key_made_for_browsers_works_from_one_and_can_be_turned_off(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(
        secret_registry, name="widget", allowBrowser=True, scopes=["sandbox:read"]
    )
    assert key["allowBrowser"] is True
    browser = {"X-API-Key": key["key"], "Origin": "https://app.example.com"}
    assert admin.http.get("/v1/me", headers=browser).status_code == 200
    changed = admin.patch(f"/v1/api-keys/{key['id']}", json={"allowBrowser": False})
    assert changed.status_code == 200
    assert changed.json()["data"]["allowBrowser"] is False
    assert admin.http.get("/v1/me", headers=browser).status_code == 403  # at once, though cached
    assert admin.patch(f"/v1/api-keys/{key['id']}", json={"allowBrowser": None}).status_code == 400


def test_a_bad_key_from_a_browser_is_still_the_one_401(admin: Member) -> None:
    headers = {"X-API-Key": "rt_live_" + "0" * 38, "Origin": "https://app.example.com"}
    _assert_unauthorized(admin.http.get("/v1/me", headers=headers))


# -- address allowlists --------------------------------------------------------------


def test_a_key_works_only_from_its_networks_and_elsewhere_is_an_audited_401(
    admin: Member, runtime: Runtime, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(
        secret_registry, allowedCidrs=["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
    )
    assert key["allowedCidrs"] == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
    for inside in ("203.0.113.9", "2001:db8::1", "198.51.100.7", "::ffff:203.0.113.10"):
        for _ in range(2):  # filling the cache, then from it
            assert admin.http.get("/v1/me", headers=_from(key["key"], inside)).status_code == 200
    for outside in ("203.0.114.1", "198.51.100.8", "2001:db9::1", "not-an-address"):
        for _ in range(2):
            _assert_unauthorized(admin.http.get("/v1/me", headers=_from(key["key"], outside)))
    refusals = [e for e in _events(runtime, key["id"]) if e.action == "auth.failed"]
    assert {e.reason for e in refusals} == {"address_not_allowed"}
    assert "203.0.114.1" in {e.ip for e in refusals}


def test_an_allowlist_is_changed_and_cleared_at_once(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, allowedCidrs=["10.0.0.0/8"])
    here = _from(key["key"], "192.0.2.1")
    _assert_unauthorized(admin.http.get("/v1/me", headers=here))
    widened = admin.patch(f"/v1/api-keys/{key['id']}", json={"allowedCidrs": ["192.0.2.0/24"]})
    assert widened.json()["data"]["allowedCidrs"] == ["192.0.2.0/24"]
    assert admin.http.get("/v1/me", headers=here).status_code == 200
    narrowed = admin.patch(f"/v1/api-keys/{key['id']}", json={"allowedCidrs": ["10.0.0.0/8"]})
    assert narrowed.status_code == 200
    _assert_unauthorized(admin.http.get("/v1/me", headers=here))  # though it was cached
    cleared = admin.patch(f"/v1/api-keys/{key['id']}", json={"allowedCidrs": None})
    assert cleared.json()["data"]["allowedCidrs"] == []
    assert admin.http.get("/v1/me", headers=here).status_code == 200


@pytest.mark.parametrize(
    "cidrs",
    [["10.0.0.0/33"], ["10.0.0.1/8"], ["example.com"], [""], ["10.0.0.0/8", "nope"], "10.0.0.0/8"],
)
def test_a_bad_allowlist_is_a_400_and_nothing_is_made_or_changed(
    admin: Member, secret_registry: SecretRegistry, cidrs: Any
) -> None:
    before = admin.get("/v1/api-keys").json()["data"]
    refused = admin.post("/v1/api-keys", json={"name": "bad", "allowedCidrs": cidrs})
    assert refused.status_code == 400, refused.text
    assert set(refused.json()["error"]) == {"code", "message", "requestId"}
    assert admin.get("/v1/api-keys").json()["data"] == before
    key = admin.create_key(secret_registry, allowedCidrs=["10.0.0.0/8"])
    patched = admin.patch(f"/v1/api-keys/{key['id']}", json={"allowedCidrs": cidrs})
    assert patched.status_code == 400
    assert admin.get(f"/v1/api-keys/{key['id']}").json()["data"]["allowedCidrs"] == ["10.0.0.0/8"]


def test_a_rotated_keys_successor_keeps_where_it_may_be_used_from(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, allowedCidrs=["10.0.0.0/8"], allowBrowser=True)
    rotated = admin.post(f"/v1/api-keys/{key['id']}/rotate", json={}).json()["data"]
    secret_registry.add(rotated["key"])
    assert (rotated["allowedCidrs"], rotated["allowBrowser"]) == (["10.0.0.0/8"], True)
    _assert_unauthorized(admin.http.get("/v1/me", headers=_from(rotated["key"], "192.0.2.1")))


@pytest.fixture
def served(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(home=tmp_path / "served", database_url=database_url, _env_file=None)
    with serve(settings, secret_registry) as app:
        yield app


def test_over_a_real_socket_the_callers_own_address_is_judged(
    served: ServedApp, secret_registry: SecretRegistry
) -> None:
    ada = served.caller()
    here = ada.post("/v1/api-keys", json={"name": "here", "allowedCidrs": ["127.0.0.0/8"]})
    away = ada.post("/v1/api-keys", json={"name": "away", "allowedCidrs": ["10.0.0.0/8"]})
    here_key = secret_registry.add(here.json()["data"]["key"])
    away_key = secret_registry.add(away.json()["data"]["key"])
    assert ada.get("/v1/me", headers={"X-API-Key": here_key}).status_code == 200
    assert ada.get("/v1/me", headers={"X-API-Key": away_key}).status_code == 401


# -- honeytokens ---------------------------------------------------------------------


def test_a_canary_never_authenticates_and_every_use_is_a_high_severity_alarm(
    admin: Member,
    runtime: Runtime,
    secret_registry: SecretRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = admin.create_key(secret_registry, name="aws-backup-creds", isCanary=True)
    assert canary["isCanary"] is True
    assert canary["status"] == "canary"
    caplog.set_level(logging.WARNING, logger="runtools.security")
    for sent in ({"X-API-Key": canary["key"]}, {"Authorization": f"Bearer {canary['key']}"}):
        _assert_unauthorized(
            admin.http.get("/v1/me", headers={**sent, "X-Forwarded-For": "192.0.2.66"})
        )
    uses = [e for e in _events(runtime, canary["id"]) if e.action == "api_key.canary_used"]
    assert len(uses) == 2
    assert {(e.ip, e.reason, e.details["severity"]) for e in uses} == {
        ("192.0.2.66", "canary", "high")
    }
    alarms = [json.loads(r.getMessage()) for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(alarms) == 2
    assert alarms[0]["event"] == "api_key.canary_used"
    assert (alarms[0]["ip"], alarms[0]["severity"]) == ("192.0.2.66", "high")
    assert canary["key"] not in caplog.text
    # The owner sees it in the audit log, as any refusal of their key.
    listed = admin.get("/v1/audit-logs", params={"action": "api_key.canary_used"}).json()["data"]
    assert len(listed) == 2


def test_a_canary_cannot_be_rotated_or_unmade_and_its_use_once_revoked_still_alarms(
    admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    canary = admin.create_key(secret_registry, isCanary=True)
    assert admin.post(f"/v1/api-keys/{canary['id']}/rotate", json={}).status_code == 409
    assert admin.patch(f"/v1/api-keys/{canary['id']}", json={"isCanary": False}).status_code == 400
    revoked = admin.delete(f"/v1/api-keys/{canary['id']}").json()["data"]
    assert (revoked["status"], revoked["isCanary"]) == ("revoked", True)
    # Revoked, its use is still an alarm.
    _assert_unauthorized(admin.http.get("/v1/me", headers={"X-API-Key": canary["key"]}))
    actions = [e.action for e in _events(runtime, canary["id"])]
    assert actions[-1] == "api_key.canary_used"
