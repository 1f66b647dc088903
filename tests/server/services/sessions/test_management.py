"""Managing one's sessions, called as the routers call it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from runtools.server.domain.audit import RequestContext
from runtools.server.domain.errors import Unauthorized
from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Tenants

PASSWORD = "correct horse battery staple"


def test_a_session_switches_organization_once(
    tenants: Tenants, client: TestClient, runtime: Runtime, secret_registry: SecretRegistry
) -> None:
    # Two switches racing past authentication (both found the session live) must
    # not both start a successor: the second finds the session over.
    tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)
    tenants.member("globex", "ada@example.com", "member")
    acme = runtime.sign_in.login("ada@example.com", PASSWORD, None, "cli", RequestContext())
    secret_registry.add(acme.access_token)
    secret_registry.add(acme.refresh_token)
    first = runtime.sessions.switch_org_by_session(acme.session_id, "globex", RequestContext())
    secret_registry.add(first.access_token)
    secret_registry.add(first.refresh_token)
    assert first.org_name == "globex"
    with pytest.raises(Unauthorized):
        runtime.sessions.switch_org_by_session(acme.session_id, "globex", RequestContext())
    headers = {"Authorization": f"Bearer {first.access_token}"}
    live = client.get("/v1/auth/sessions", headers=headers).json()["data"]
    assert [s["id"] for s in live] == [first.session_id]
