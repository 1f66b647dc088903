"""Session tokens: sign-in, refresh with reuse detection, sign-out, sessions, orgs."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from support.live_server import LiveServer
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"


def sign_in(
    client: TestClient,
    registry: SecretRegistry,
    email: str = "ada@example.com",
    password: str = PASSWORD,
    **extra: Any,
) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": email, "password": password, **extra})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()["data"]
    registry.add(tokens["accessToken"])
    registry.add(tokens["refreshToken"])
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ada(tenants: Tenants) -> Member:
    return tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)


def test_an_access_token_is_a_bearer_credential_never_an_api_key(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    token = sign_in(client, secret_registry)["accessToken"]
    as_key = {"X-API-Key": token}
    assert client.get("/v1/me", headers=as_key).status_code == 401  # not yet verified
    assert client.get("/v1/me", headers=bearer(token)).status_code == 200  # now cached
    refused = client.get("/v1/me", headers=as_key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_sign_in_returns_a_token_pair_that_acts_as_the_user(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    response = client.post(
        "/v1/auth/login",
        json={"email": "ADA@example.com", "password": PASSWORD, "clientName": "cli"},
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()["data"]
    secret_registry.add(tokens["accessToken"])
    secret_registry.add(tokens["refreshToken"])
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 300
    assert tokens["org"] == {"id": ada.org_id, "name": "acme"}
    assert tokens["refreshToken"].startswith("rtr_")
    assert len(tokens["refreshToken"]) >= 47
    me = client.get("/v1/me", headers=bearer(tokens["accessToken"])).json()["data"]
    assert me["credential"]["type"] == "session"
    assert me["credential"]["id"] == tokens["sessionId"]
    assert me["credential"]["name"] == "cli"
    assert me["credential"]["expiresAt"] == "2026-01-15T12:05:00Z"  # the access token's
    assert me["credential"]["id"].startswith("ses_")
    assert me["credential"]["keyPrefix"] is None
    assert me["credential"]["scopes"] == ["*"]
    assert me["credential"]["isTest"] is False
    assert me["user"]["role"] == "admin"
    assert me["effectiveScopes"] == ["*"]


def test_unknown_email_and_wrong_password_get_the_same_reply_in_the_same_time(
    ada: Member, client: TestClient
) -> None:
    def attempt(email: str) -> tuple[float, Any]:
        started = time.perf_counter()
        response = client.post("/v1/auth/login", json={"email": email, "password": "wrong!"})
        return time.perf_counter() - started, response

    unknown = [attempt(f"ghost{i}@example.com") for i in range(3)]
    wrong = [attempt("ada@example.com") for _ in range(3)]
    bodies = []
    for _, response in unknown + wrong:
        assert response.status_code == 401
        body = response.json()
        body["error"].pop("requestId")
        bodies.append(body)
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["error"]["message"] == "Invalid email or password"
    # Both paths run Argon2 (a dummy hash for unknown emails), so neither is an
    # order of magnitude faster than the other.
    fastest_unknown = min(t for t, _ in unknown)
    slowest_wrong = max(t for t, _ in wrong)
    assert fastest_unknown > slowest_wrong / 5


def test_failed_sign_ins_are_throttled_per_account_and_audited(
    ada: Member, client: TestClient, runtime: Runtime
) -> None:
    for _ in range(5):
        failed = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": "no"})
        assert failed.status_code == 401
        assert "x-ratelimit-remaining" in failed.headers  # the per-address minute window
    throttled = client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "rate_limited"
    retry_after = int(throttled.headers["retry-after"])
    assert retry_after > 60
    # Retry-After alone says when: no window header claiming requests remain.
    assert not [h for h in throttled.headers if h.startswith("x-ratelimit-")]
    assert throttled.json()["error"]["message"] == (
        f"Too many failed sign-ins; retry in {retry_after}s"
    )
    events = ada.get("/v1/audit-logs", params={"action": "auth.sign_in_failed"}).json()["data"]
    assert len(events) == 5
    assert events[0]["reason"] == "wrong_password"
    assert events[0]["actorId"] == ada.user_id


def test_failed_sign_ins_are_throttled_per_address(
    ada: Member, client: TestClient, runtime: Runtime
) -> None:
    runtime.sign_in.ip_throttle.limit = 3
    for i in range(3):
        client.post("/v1/auth/login", json={"email": f"x{i}@example.com", "password": "nope"})
    response = client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 429


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> None:
    from runtools.server.app import create_app, runtime_of
    from runtools.server.settings import Settings

    settings = Settings(
        home=tmp_path / "proxied", database_url=database_url, trust_forwarded_for=True,
        _env_file=None,
    )  # fmt: skip
    app = create_app(settings)
    runtime_of(app).sign_in.ip_throttle.limit = 3
    try:
        client = TestClient(app)
        # The client writes what it likes before the proxy's entry; only the last counts.
        for i, sent in enumerate(["", ",", "10.0.0.1"]):
            forwarded = f"{sent}, 198.51.100.7" if sent else ", 198.51.100.7"
            client.post(
                "/v1/auth/login",
                json={"email": f"x{i}@example.com", "password": "nope"},
                headers={"X-Forwarded-For": forwarded},
            )
        refused = client.post(
            "/v1/auth/login",
            json={"email": "y@example.com", "password": "nope"},
            headers={"X-Forwarded-For": "203.0.113.99, 198.51.100.7"},
        )
        assert refused.status_code == 429
        # A blank last entry is no address: the connection's own is used, never none.
        for i in range(4):
            blank = client.post(
                "/v1/auth/login",
                json={"email": f"z{i}@example.com", "password": "nope"},
                headers={"X-Forwarded-For": ","},
            )
        assert blank.status_code == 429
    finally:
        runtime_of(app).close()


def test_signup_is_closed_by_default(client: TestClient) -> None:
    response = client.post(
        "/v1/auth/signup", json={"email": "new@example.com", "password": PASSWORD, "org": "newco"}
    )
    assert response.status_code == 403
    assert "closed" in response.json()["error"]["message"]


def test_open_signup_creates_the_user_and_their_org(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> None:
    from runtools.server.app import create_app, runtime_of
    from runtools.server.settings import Settings

    app = create_app(
        Settings(home=tmp_path / "open", database_url=database_url, signup="open", _env_file=None)
    )
    try:
        client = TestClient(app)
        response = client.post(
            "/v1/auth/signup",
            json={"email": "new@example.com", "password": PASSWORD, "org": "newco"},
        )
        assert response.status_code == 201
        tokens = response.json()["data"]
        secret_registry.add(tokens["accessToken"])
        secret_registry.add(tokens["refreshToken"])
        me = client.get("/v1/me", headers=bearer(tokens["accessToken"])).json()["data"]
        assert me["organization"]["name"] == "newco"
        assert me["user"]["role"] == "admin"
        again = client.post(
            "/v1/auth/signup",
            json={"email": "new@example.com", "password": PASSWORD, "org": "other"},
        )
        assert again.status_code == 409
        weak = client.post(
            "/v1/auth/signup", json={"email": "w@example.com", "password": "short", "org": "weak"}
        )
        assert weak.status_code == 400
    finally:
        runtime_of(app).close()


def test_refresh_rotates_and_reuse_revokes_the_whole_session(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    first = sign_in(client, secret_registry)
    second = client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200
    second_tokens = second.json()["data"]
    secret_registry.add(second_tokens["accessToken"])
    secret_registry.add(second_tokens["refreshToken"])
    assert second_tokens["refreshToken"] != first["refreshToken"]
    assert second_tokens["sessionId"] == first["sessionId"]

    clock.advance(timedelta(seconds=11))  # past the race grace: this is theft
    stolen = client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert stolen.status_code == 401
    assert client.get("/v1/me", headers=bearer(second_tokens["accessToken"])).status_code == 401
    assert (
        client.post(
            "/v1/auth/refresh", json={"refreshToken": second_tokens["refreshToken"]}
        ).status_code
        == 401
    )
    events = ada.get("/v1/audit-logs", params={"action": "session.refresh_reuse_detected"}).json()[
        "data"
    ]
    assert len(events) == 1
    assert events[0]["targetId"] == first["sessionId"]


def test_a_racing_refresh_within_the_grace_gets_the_same_successor(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    first = sign_in(client, secret_registry)
    one = client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    two = client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert one.status_code == two.status_code == 200
    successor = one.json()["data"]["refreshToken"]
    secret_registry.add(successor)
    secret_registry.add(one.json()["data"]["accessToken"])
    secret_registry.add(two.json()["data"]["accessToken"])
    assert two.json()["data"]["refreshToken"] == successor
    third = client.post("/v1/auth/refresh", json={"refreshToken": successor})
    assert third.status_code == 200
    secret_registry.add(third.json()["data"]["refreshToken"])
    secret_registry.add(third.json()["data"]["accessToken"])


def test_idle_and_absolute_lifetimes_end_sessions(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    idle = sign_in(client, secret_registry)
    clock.advance(timedelta(days=7, seconds=1))
    assert (
        client.post("/v1/auth/refresh", json={"refreshToken": idle["refreshToken"]}).status_code
        == 401
    )

    active = sign_in(client, secret_registry)
    token = active["refreshToken"]
    refreshed = 0
    for _ in range(5):  # refreshed every 6 days: never idle, but 30 days is the end
        clock.advance(timedelta(days=6))
        response = client.post("/v1/auth/refresh", json={"refreshToken": token})
        if response.status_code != 200:
            break
        refreshed += 1
        token = secret_registry.add(response.json()["data"]["refreshToken"])
        secret_registry.add(response.json()["data"]["accessToken"])
    assert response.status_code == 401
    assert refreshed == 4  # days 6, 12, 18, 24 worked; day 30 is the absolute end


def test_access_tokens_expire(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    tokens = sign_in(client, secret_registry)
    assert client.get("/v1/me", headers=bearer(tokens["accessToken"])).status_code == 200
    clock.advance(timedelta(seconds=301))
    assert client.get("/v1/me", headers=bearer(tokens["accessToken"])).status_code == 401


def test_logout_ends_the_session_on_the_next_request(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tokens = sign_in(client, secret_registry)
    headers = bearer(tokens["accessToken"])
    assert client.get("/v1/me", headers=headers).status_code == 200
    assert client.post("/v1/auth/logout", headers=headers).status_code == 200
    assert client.get("/v1/me", headers=headers).status_code == 401
    assert (
        client.post("/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}).status_code
        == 401
    )


def test_a_logged_out_token_fails_even_on_a_fresh_process(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    tokens = sign_in(client, secret_registry)
    client.post("/v1/auth/logout", headers=bearer(tokens["accessToken"]))
    runtime.authenticator._cache.clear()  # as a node that never saw the event
    assert client.get("/v1/me", headers=bearer(tokens["accessToken"])).status_code == 401


def test_revoking_one_session_leaves_the_others_working(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    laptop = sign_in(client, secret_registry, clientName="laptop")
    phone = sign_in(client, secret_registry, clientName="phone")
    desk = sign_in(client, secret_registry, clientName="desk")
    listed = client.get("/v1/auth/sessions", headers=bearer(laptop["accessToken"])).json()
    assert {s["clientName"] for s in listed["data"]} == {"laptop", "phone", "desk"}
    assert [s["current"] for s in listed["data"] if s["clientName"] == "laptop"] == [True]
    assert "hasMore" in listed["meta"]
    response = client.delete(
        f"/v1/auth/sessions/{phone['sessionId']}", headers=bearer(laptop["accessToken"])
    )
    assert response.status_code == 200
    assert client.get("/v1/me", headers=bearer(phone["accessToken"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(laptop["accessToken"])).status_code == 200
    others = client.delete("/v1/auth/sessions", headers=bearer(laptop["accessToken"]))
    assert others.json()["data"]["revoked"] == 1
    assert client.get("/v1/me", headers=bearer(desk["accessToken"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(laptop["accessToken"])).status_code == 200


def test_sessions_of_another_user_are_404(
    ada: Member, tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tenants.member("acme", "bob@example.com", "member", password=PASSWORD)
    adas = sign_in(client, secret_registry)
    bobs = sign_in(client, secret_registry, email="bob@example.com")
    response = client.delete(
        f"/v1/auth/sessions/{adas['sessionId']}", headers=bearer(bobs["accessToken"])
    )
    assert response.status_code == 404
    assert client.get("/v1/me", headers=bearer(adas["accessToken"])).status_code == 200


def test_session_management_needs_a_session_not_an_api_key(ada: Member) -> None:
    response = ada.get("/v1/auth/sessions")
    assert response.status_code == 403
    assert "signed-in session" in response.json()["error"]["message"]


def test_switching_org_starts_a_session_there(
    ada: Member, tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tenants.member("globex", "ada@example.com", "member")
    acme = sign_in(client, secret_registry)
    switched = client.post(
        "/v1/auth/switch-org", json={"org": "globex"}, headers=bearer(acme["accessToken"])
    )
    assert switched.status_code == 200
    tokens = switched.json()["data"]
    secret_registry.add(tokens["accessToken"])
    secret_registry.add(tokens["refreshToken"])
    me = client.get("/v1/me", headers=bearer(tokens["accessToken"])).json()["data"]
    assert me["organization"]["name"] == "globex"
    assert me["user"]["role"] == "member"
    assert client.get("/v1/me", headers=bearer(acme["accessToken"])).status_code == 401
    nowhere = client.post(
        "/v1/auth/switch-org", json={"org": "initech"}, headers=bearer(tokens["accessToken"])
    )
    assert nowhere.status_code == 403
    direct = sign_in(client, secret_registry, org="globex")
    assert direct["org"]["name"] == "globex"


def test_sessions_manage_api_keys_within_the_role(
    ada: Member, tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tenants.member("acme", "bob@example.com", "member", password=PASSWORD)
    bob = sign_in(client, secret_registry, email="bob@example.com")
    created = client.post(
        "/v1/api-keys",
        headers=bearer(bob["accessToken"]),
        json={"name": "from-session", "scopes": ["sandbox:*"]},
    )
    assert created.status_code == 201
    secret_registry.add(created.json()["data"]["key"])
    beyond = client.post(
        "/v1/api-keys",
        headers=bearer(bob["accessToken"]),
        json={"name": "x", "scopes": ["org:members"]},
    )
    assert beyond.status_code == 403
    assert (
        client.get(
            "/v1/api-keys", params={"all": "true"}, headers=bearer(bob["accessToken"])
        ).status_code
        == 403
    )
    adas = sign_in(client, secret_registry)
    everything = client.get(
        "/v1/api-keys", params={"all": "true"}, headers=bearer(adas["accessToken"])
    ).json()["data"]
    assert "from-session" in {k["name"] for k in everything}


def test_a_removed_member_session_stops_at_once(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    from sqlalchemy import delete

    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.store.models import Membership

    tokens = sign_in(client, secret_registry)
    assert client.get("/v1/me", headers=bearer(tokens["accessToken"])).status_code == 200
    with runtime.database.session() as session:
        session.execute(delete(Membership).where(Membership.user_id == ada.user_id))
        session.commit()
    runtime.bus.publish(CredentialEvent(EventKind.MEMBER_CHANGED, ada.org_id, user_id=ada.user_id))
    assert client.get("/v1/me", headers=bearer(tokens["accessToken"])).status_code == 401


def test_changing_password_ends_other_sessions(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    here = sign_in(client, secret_registry)
    elsewhere = sign_in(client, secret_registry)
    wrong = client.post(
        "/v1/auth/password",
        headers=bearer(here["accessToken"]),
        json={"currentPassword": "not it", "newPassword": "a new passphrase!"},
    )
    assert wrong.status_code == 400
    changed = client.post(
        "/v1/auth/password",
        headers=bearer(here["accessToken"]),
        json={"currentPassword": PASSWORD, "newPassword": "a new passphrase!"},
    )
    assert changed.status_code == 200
    assert changed.json()["data"]["revoked"] == 1
    assert client.get("/v1/me", headers=bearer(elsewhere["accessToken"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(here["accessToken"])).status_code == 200
    old = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert old.status_code == 401
    sign_in(client, secret_registry, password="a new passphrase!")


def test_bad_bodies_get_the_envelope(client: TestClient) -> None:
    for path, body in [
        ("/v1/auth/login", {"email": "a@b.c"}),
        ("/v1/auth/login", {"email": "a@b.c", "password": "x", "extra": 1}),
        ("/v1/auth/refresh", {}),
        ("/v1/auth/refresh", {"refreshToken": 5}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
    garbage = client.post("/v1/auth/refresh", json={"refreshToken": "rtr_nothing"})
    assert garbage.status_code == 401


def test_refresh_can_move_the_session_to_another_org(
    ada: Member, tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tenants.member("globex", "ada@example.com", "member")
    tokens = sign_in(client, secret_registry)
    moved = client.post(
        "/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"], "org": "globex"}
    )
    assert moved.status_code == 200
    data = moved.json()["data"]
    secret_registry.add(data["accessToken"])
    secret_registry.add(data["refreshToken"])
    assert data["org"]["name"] == "globex"
    me = client.get("/v1/me", headers=bearer(data["accessToken"])).json()["data"]
    assert me["organization"]["name"] == "globex"


@pytest.mark.slow
def test_a_burst_of_wrong_sign_ins_does_not_starve_the_database(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    import concurrent.futures

    import httpx

    from support.live_server import runtools

    runtools("admin", "create-org", "acme", env=server_env)
    runtools(
        "admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin",
        "--password-stdin", env=server_env, stdin=PASSWORD,
    )  # fmt: skip
    live_server.env["RUNTOOLS_LOGIN_MAX_FAILURES_PER_IP"] = "1000"  # one address plays many
    server = live_server.start()

    def wrong(i: int) -> int:
        body = {"email": f"nobody{i}@example.com", "password": "wrong"}
        return httpx.post(f"{server.url}/v1/auth/login", json=body, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(wrong, range(40)))
    # Refused, never "unavailable": no guess held a connection while it waited.
    assert statuses == [401] * 40, statuses
    started = time.monotonic()
    right = httpx.post(
        f"{server.url}/v1/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        timeout=60,
    )
    assert right.status_code == 200
    secret_registry.add(right.json()["data"]["accessToken"])
    secret_registry.add(right.json()["data"]["refreshToken"])
    assert time.monotonic() - started < 5
