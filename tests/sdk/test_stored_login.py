"""Stored logins against the real service: used when nothing else is given, refreshed, shared."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtools import (
    AsyncRunTools,
    AuthenticationError,
    LoginStore,
    MissingCredentialsError,
    RunTools,
    StoredLogin,
)
from runtools.server import operator
from runtools.server.app import create_app, runtime_of
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry

URL = "http://runtools.test"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[FastAPI]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        device_poll_interval_seconds=1,
        _env_file=None,
    )
    application = create_app(settings)
    runtime = runtime_of(application)
    operator.create_org(runtime, "acme")
    operator.create_user(
        runtime,
        "ada@example.com",
        org_name="acme",
        role="admin",
        password=PASSWORD,
        display_name=None,
    )
    yield application
    runtime.close()


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=URL) as client:
        yield client


@pytest.fixture
def store(tmp_path: Path) -> LoginStore:
    return LoginStore(Path(os.environ["RUNTOOLS_CONFIG_DIR"]))


def sign_in(http: TestClient, registry: SecretRegistry) -> dict[str, Any]:
    response = http.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    registry.add(data["accessToken"])
    registry.add(data["refreshToken"])
    return data


def stored(
    tokens: dict[str, Any], *, expires_at: datetime, access: str | None = None
) -> StoredLogin:
    return StoredLogin(
        api_url=URL,
        type="session",
        access_token=access or tokens["accessToken"],
        refresh_token=tokens["refreshToken"],
        expires_at=expires_at,
        session_id=tokens["sessionId"],
    )


def test_without_key_or_token_the_stored_login_is_used(
    http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    with pytest.raises(MissingCredentialsError, match="runtools login"):
        RunTools(base_url=URL, http_client=http)
    tokens = sign_in(http, secret_registry)
    store.save(stored(tokens, expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    rt = RunTools(base_url=URL, http_client=http)
    assert rt.credential.source == "stored login"
    assert rt.me().credential.id == tokens["sessionId"]
    assert tokens["accessToken"] not in repr(rt)
    assert tokens["refreshToken"] not in repr(store.get(URL))


def test_a_login_near_expiry_is_refreshed_and_saved(
    http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    tokens = sign_in(http, secret_registry)
    store.save(stored(tokens, expires_at=datetime.now(UTC) + timedelta(seconds=5)))
    rt = RunTools(base_url=URL, http_client=http)
    assert rt.me().credential.type == "session"
    saved = store.get(URL)
    assert saved is not None
    assert saved.refresh_token != tokens["refreshToken"]
    secret_registry.add(saved.refresh_token or "")
    secret_registry.add(saved.access_token or "")
    assert saved.seconds_left() > 60
    # A second process holding the old pair adopts the saved one instead of reusing the
    # spent refresh token (which would end the session).
    other = RunTools(base_url=URL, http_client=http)
    assert other.me().credential.id == tokens["sessionId"]


def test_a_401_triggers_one_refresh_then_the_request_again(
    http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    tokens = sign_in(http, secret_registry)
    forged = "eyJhbGciOiJFZERTQSJ9.e30.c2ln"
    store.save(stored(tokens, access=forged, expires_at=datetime.now(UTC) + timedelta(hours=1)))
    rt = RunTools(base_url=URL, http_client=http)
    assert rt.me().credential.id == tokens["sessionId"]
    saved = store.get(URL)
    assert saved is not None
    assert saved.access_token != forged
    secret_registry.add(saved.refresh_token or "")
    secret_registry.add(saved.access_token or "")


def test_a_signed_out_session_says_to_sign_in_again(
    http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    tokens = sign_in(http, secret_registry)
    store.save(stored(tokens, expires_at=datetime.now(UTC) + timedelta(hours=1)))
    rt = RunTools(base_url=URL, http_client=http)
    rt.auth.logout()
    with pytest.raises(AuthenticationError, match="run `runtools login` again"):
        rt.me()


def _also_member_of_globex(app: FastAPI) -> None:
    runtime = runtime_of(app)
    operator.create_org(runtime, "globex")
    operator.create_user(
        runtime, "ada@example.com", org_name="globex", role="member", password=None,
        display_name=None,
    )  # fmt: skip


def _saved_after_switch(
    store: LoginStore, before: dict[str, Any], registry: SecretRegistry
) -> StoredLogin:
    saved = store.get(URL)
    assert saved is not None
    assert saved.access_token
    assert saved.refresh_token
    registry.add(saved.access_token)
    registry.add(saved.refresh_token)
    assert saved.refresh_token != before["refreshToken"]
    assert saved.session_id != before["sessionId"]
    assert saved.org_name == "globex"
    assert saved.seconds_left() > 60
    return saved


def test_switching_organization_carries_the_stored_login_over(
    app: FastAPI, http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    _also_member_of_globex(app)
    tokens = sign_in(http, secret_registry)
    store.save(stored(tokens, expires_at=datetime.now(UTC) + timedelta(hours=1)))
    rt = RunTools(base_url=URL, http_client=http)
    moved = rt.auth.switch_org("globex")
    saved = _saved_after_switch(store, tokens, secret_registry)
    assert saved.session_id == moved.session_id
    # This client goes on as the new session, and so does the next process.
    assert rt.me().organization.name == "globex"
    assert RunTools(base_url=URL, http_client=http).me().credential.id == moved.session_id


@pytest.mark.anyio
async def test_switching_organization_carries_the_stored_login_over_async(
    app: FastAPI, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    _also_member_of_globex(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=URL) as http:
        signed_in = await http.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        tokens = signed_in.json()["data"]
        secret_registry.add(tokens["accessToken"])
        secret_registry.add(tokens["refreshToken"])
        store.save(stored(tokens, expires_at=datetime.now(UTC) + timedelta(hours=1)))
        async with AsyncRunTools(base_url=URL, http_client=http) as rt:
            moved = await rt.auth.switch_org("globex")
            assert (await rt.me()).credential.id == moved.session_id
    assert _saved_after_switch(store, tokens, secret_registry).session_id == moved.session_id


def test_sessions_are_listed_and_revoked(
    http: TestClient, store: LoginStore, secret_registry: SecretRegistry
) -> None:
    first = sign_in(http, secret_registry)
    second = sign_in(http, secret_registry)
    rt = RunTools(access_token=first["accessToken"], base_url=URL, http_client=http)
    sessions = list(rt.sessions.list())
    assert {s.id for s in sessions} == {first["sessionId"], second["sessionId"]}
    assert [s.current for s in sessions if s.id == first["sessionId"]] == [True]
    rt.sessions.revoke(second["sessionId"])
    assert [s.id for s in rt.sessions.list()] == [first["sessionId"]]
    sign_in(http, secret_registry)
    assert rt.sessions.revoke_others() == 1


def test_a_device_code_is_approved_by_a_signed_in_client(
    http: TestClient, secret_registry: SecretRegistry
) -> None:
    from runtools import DeviceLogin

    tokens = sign_in(http, secret_registry)
    approver = RunTools(access_token=tokens["accessToken"], base_url=URL, http_client=http)
    with DeviceLogin(base_url=URL, http_client=http) as device:
        grant = device.start()
        secret_registry.add(grant.device_code)
        assert grant.device_code not in repr(grant)
        assert device.poll(grant) == "authorization_pending"
        approval = approver.auth.approve_device(grant.user_code.lower())
        assert approval.status == "approved"
        assert approval.client_id == "runtools-cli"
        issued = device.wait(grant)
    secret_registry.add(issued.access_token)
    secret_registry.add(issued.refresh_token)
    me = RunTools(access_token=issued.access_token, base_url=URL, http_client=http).me()
    assert me.user is not None
    assert me.user.email == "ada@example.com"


class DropFirstCreateResponse(httpx.AsyncBaseTransport):
    """The server handles the first create, then the connection dies before the answer arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.dropped = 0
        self.keys_sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/v1/api-keys":
            self.keys_sent.append(request.headers["Idempotency-Key"])
            if not self.dropped:
                self.dropped += 1
                await response.aread()
                raise httpx.ReadError("connection reset by peer", request=request)
        return response


@pytest.mark.anyio
async def test_a_create_whose_answer_was_lost_is_retried_and_returns_the_first_key(
    app: FastAPI, secret_registry: SecretRegistry
) -> None:
    runtime = runtime_of(app)
    issued, _, _ = operator.create_key(
        runtime,
        org_name="acme",
        email="ada@example.com",
        name="sdk",
        scopes=["*"],
        expires_in=None,
        is_test=False,
    )
    secret_registry.add(issued.secret)
    transport = DropFirstCreateResponse(httpx.ASGITransport(app=app))
    async with (
        httpx.AsyncClient(transport=transport) as http,
        AsyncRunTools(api_key=issued.secret, base_url=URL, http_client=http) as rt,
    ):
        rt._random = lambda: 0.0
        created = await rt.api_keys.create("ci", scopes=["sandbox:*"])
        secret_registry.add(created.key)
        names = [k.name async for k in rt.api_keys.list()]
    assert transport.dropped == 1
    assert len(set(transport.keys_sent)) == 1
    assert len(transport.keys_sent) == 2
    assert names == ["ci", "sdk"]  # one key, not two
    async with AsyncRunTools(
        api_key=created.key,
        base_url=URL,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
    ) as ci:
        assert (await ci.me()).credential.id == created.id


def test_an_explicit_idempotency_key_replays_the_same_secret(
    app: FastAPI, http: TestClient, secret_registry: SecretRegistry
) -> None:
    issued, _, _ = operator.create_key(
        runtime_of(app),
        org_name="acme",
        email="ada@example.com",
        name="sdk",
        scopes=["*"],
        expires_in=None,
        is_test=False,
    )
    secret_registry.add(issued.secret)
    rt = RunTools(api_key=issued.secret, base_url=URL, http_client=http)
    key = str(uuid.uuid4())
    first = rt.api_keys.create("deploy", idempotency_key=key)
    again = rt.api_keys.create("deploy", idempotency_key=key)
    secret_registry.add(first.key)
    assert (again.id, again.key) == (first.id, first.key)
