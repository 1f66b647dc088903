"""The SDK against the real service: in process (ASGI) and over a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from runtools import (
    APIConnectionError,
    AsyncRunTools,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RunTools,
)
from runtools.server import operator
from runtools.server.app import create_app, runtime_of
from runtools.server.settings import Settings
from support.live_server import free_port
from support.secret_registry import SecretRegistry


@pytest.fixture
def asgi_app(tmp_path: Path, database_url: str | None) -> Iterator[FastAPI]:
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    app = create_app(settings)
    yield app
    runtime_of(app).close()


@pytest.fixture
def api_key(asgi_app: FastAPI, secret_registry: SecretRegistry) -> str:
    runtime = runtime_of(asgi_app)
    operator.create_org(runtime, "acme")
    operator.create_user(
        runtime, "ada@example.com", org_name="acme", role="admin", password=None, display_name=None
    )
    issued, _, _ = operator.create_key(
        runtime,
        org_name="acme",
        email="ada@example.com",
        name="sdk",
        scopes=["*"],
        expires_in=None,
        is_test=False,
    )
    return secret_registry.add(issued.secret)


def test_sync_client_manages_a_keys_whole_life(
    client: RunTools, secret_registry: SecretRegistry
) -> None:
    me = client.me()
    assert me.organization.name == "acme"
    assert me.user is not None
    assert me.user.role == "admin"
    created = client.api_keys.create(name="ci", scopes=["sandbox:read"], expires_in="30d")
    secret_registry.add(created.key)
    assert created.key.startswith("rt_live_")
    assert created.message
    assert client.api_keys.get(created.id).name == "ci"
    assert client.api_keys.update(created.id, name="ci-2").name == "ci-2"
    rotated = client.api_keys.rotate(created.id, grace_period="1h")
    secret_registry.add(rotated.key)
    assert rotated.rotated_from_id == created.id
    gone = client.api_keys.revoke(rotated.id)
    assert gone.status == "revoked"
    assert gone.blast_radius is not None
    assert (gone.blast_radius.events, gone.blast_radius.actions) == (0, [])
    used = client.api_keys.usage(created.id, days=2)
    assert [type(d).__name__ for d in used] == ["KeyUsageDay", "KeyUsageDay"]
    assert used[-1].day is not None
    revoked = RunTools(api_key=rotated.key, base_url=str(client.base_url))
    with revoked, pytest.raises(AuthenticationError) as raised:
        revoked.me()
    assert raised.value.status_code == 401
    assert raised.value.request_id is not None
    assert raised.value.request_id.startswith("req_")


def test_sync_client_sets_reads_and_clears_a_keys_rate_limit(
    client: RunTools, secret_registry: SecretRegistry
) -> None:
    slow = client.api_keys.create(name="slow", rate_limit=5)
    secret_registry.add(slow.key)
    assert slow.rate_limit == 5
    assert client.api_keys.get(slow.id).rate_limit == 5
    used = httpx.get(f"{client.base_url}/v1/me", headers={"X-API-Key": slow.key})
    assert used.headers["X-RateLimit-Limit"] == "5"
    assert client.api_keys.update(slow.id, rate_limit=2).rate_limit == 2
    assert client.api_keys.update(slow.id, name="renamed").rate_limit == 2  # left alone
    assert client.api_keys.update(slow.id, rate_limit=None).rate_limit is None
    used = httpx.get(f"{client.base_url}/v1/me", headers={"X-API-Key": slow.key})
    assert used.headers["X-RateLimit-Limit"] == "60"  # the free plan's again
    with pytest.raises(BadRequestError) as too_fast:
        client.api_keys.create(name="fast", rate_limit=61)
    assert "rateLimit" in too_fast.value.message


def test_sync_client_pages_through_every_key(
    client: RunTools, secret_registry: SecretRegistry
) -> None:
    for i in range(5):
        secret_registry.add(client.api_keys.create(name=f"k{i}").key)
    names = [k.name for k in client.api_keys.list(limit=2)]
    assert names == ["k4", "k3", "k2", "k1", "k0", "sdk"]
    first = client.api_keys.list(limit=2).first_page()
    assert first.has_more
    assert first.next_cursor
    assert len(first.data) == 2


def test_sync_client_maps_service_errors(client: RunTools, secret_registry: SecretRegistry) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.api_keys.get("key_doesnotexist")
    assert missing.value.code == "not_found"
    with pytest.raises(BadRequestError) as bad:
        client.api_keys.create(name="x", scopes=["sandbox:destroy"])
    assert "sandbox:destroy" in bad.value.message
    narrow = client.api_keys.create(name="narrow", scopes=["sandbox:read"])
    secret_registry.add(narrow.key)
    reader = RunTools(api_key=narrow.key, base_url=str(client.base_url))
    with reader, pytest.raises(PermissionDeniedError) as denied:
        reader.api_keys.create(name="wider")
    assert denied.value.message == "This call requires scope *"


def test_sync_client_adds_lists_and_removes_an_ssh_key(client: RunTools, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    line = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    (tmp_path / "id.pub").write_text(f"{line} ada@laptop\n")
    added = client.ssh_keys.add("laptop", file=tmp_path / "id.pub")
    assert added.key_type == "ssh-ed25519"
    assert added.comment == "ada@laptop"
    assert added.fingerprint
    assert added.fingerprint.startswith("SHA256:")
    assert [k.id for k in client.ssh_keys.list()] == [added.id]
    assert client.ssh_keys.get(added.id).fingerprint == added.fingerprint
    with pytest.raises(BadRequestError) as private:
        client.ssh_keys.add("oops", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n")
    assert "private key" in private.value.message
    assert client.ssh_keys.remove(added.id).id == added.id
    with pytest.raises(NotFoundError):
        client.ssh_keys.get(added.id)


@pytest.mark.anyio
async def test_async_client_against_the_service(
    async_client: AsyncRunTools, secret_registry: SecretRegistry
) -> None:
    me = await async_client.me()
    assert me.credential.name == "sdk"
    created = await async_client.api_keys.create(name="async", scopes=["sandbox:*"], rate_limit=7)
    secret_registry.add(created.key)
    assert created.rate_limit == 7
    assert (await async_client.api_keys.update(created.id, rate_limit=None)).rate_limit is None
    names = [k.name async for k in async_client.api_keys.list(limit=1)]
    assert names == ["async", "sdk"]
    await async_client.api_keys.revoke(created.id)
    with pytest.raises(NotFoundError):
        await async_client.api_keys.get("key_nope")


PASSWORD = "correct horse battery staple"


def _signed_in_member_of_two_orgs(
    asgi_app: FastAPI, server_url: str, registry: SecretRegistry
) -> str:
    """Carol: admin of north (signed in there), member of south. Her access token."""
    runtime = runtime_of(asgi_app)
    for org, role, password in (("north", "admin", PASSWORD), ("south", "member", None)):
        operator.create_org(runtime, org)
        operator.create_user(
            runtime, "carol@example.com", org_name=org, role=role, password=password,
            display_name=None,
        )  # fmt: skip
    response = httpx.post(
        f"{server_url}/v1/auth/login",
        json={"email": "carol@example.com", "password": PASSWORD, "org": "north"},
    )
    data = response.json()["data"]
    registry.add(data["refreshToken"])
    return str(registry.add(data["accessToken"]))


def test_switch_org_moves_a_session_and_ends_the_old_one(
    client: RunTools, asgi_app: FastAPI, server_url: str, secret_registry: SecretRegistry
) -> None:
    token = _signed_in_member_of_two_orgs(asgi_app, server_url, secret_registry)
    with RunTools(access_token=token, base_url=server_url) as carol:
        assert carol.me().organization.name == "north"
        with pytest.raises(PermissionDeniedError, match="not a member of 'initech'"):
            carol.auth.switch_org("initech")
        tokens = carol.auth.switch_org("south")
        secret_registry.add(tokens.access_token)
        secret_registry.add(tokens.refresh_token)
        assert tokens.org is not None
        assert tokens.org.name == "south"
        assert tokens.session_id
        with pytest.raises(AuthenticationError):
            carol.me()  # the old session ended with the switch
    with RunTools(access_token=tokens.access_token, base_url=server_url) as moved:
        me = moved.me()
    assert me.user is not None
    assert (me.organization.name, me.user.role) == ("south", "member")
    assert me.credential.id == tokens.session_id
    with pytest.raises(PermissionDeniedError):
        client.auth.switch_org("south")  # an API key belongs to one organization
    with pytest.raises(ValueError, match="non-empty organization name"):
        client.auth.switch_org("  ")


@pytest.mark.anyio
async def test_async_switch_org(
    asgi_app: FastAPI, server_url: str, secret_registry: SecretRegistry
) -> None:
    token = _signed_in_member_of_two_orgs(asgi_app, server_url, secret_registry)
    async with AsyncRunTools(access_token=token, base_url=server_url) as carol:
        tokens = await carol.auth.switch_org("south")
    secret_registry.add(tokens.access_token)
    secret_registry.add(tokens.refresh_token)
    async with AsyncRunTools(access_token=tokens.access_token, base_url=server_url) as moved:
        assert (await moved.me()).organization.name == "south"


def test_auth_calls_go_to_the_auth_url_and_the_rest_to_the_api_url(
    asgi_app: FastAPI, server_url: str, secret_registry: SecretRegistry
) -> None:
    token = _signed_in_member_of_two_orgs(asgi_app, server_url, secret_registry)
    nowhere = f"http://127.0.0.1:{free_port()}"  # no API here: only the auth service answers
    with RunTools(access_token=token, base_url=nowhere, auth_url=server_url, max_retries=0) as rt:
        (only,) = list(rt.sessions.list())
        assert only.current
        with pytest.raises(APIConnectionError):
            rt.me()
        rt.auth.logout()
    with (
        RunTools(access_token=token, base_url=server_url) as ended,
        pytest.raises(AuthenticationError),
    ):
        ended.me()


def test_sync_client_manages_projects_and_what_they_group(
    client: RunTools, secret_registry: SecretRegistry
) -> None:
    [default] = client.projects.list()
    assert default.is_default
    web = client.projects.create("web", color="#3B82F6", description="The storefront")
    assert (web.name, web.color, web.is_default) == ("web", "#3b82f6", False)
    assert client.projects.resolve("web").id == web.id
    key = client.api_keys.create(name="ci", project_id=web.id)
    secret_registry.add(key.key)
    assert key.project_id == web.id
    cleared = client.projects.update(web.id, color=None)
    assert cleared.color is None
    assert cleared.description == "The storefront"
    assert client.projects.rename(web.id, "shop").name == "shop"
    with pytest.raises(BadRequestError):
        client.api_keys.create(name="stray", project_id="11111111-1111-4111-8111-111111111111")
    deleted = client.projects.delete(web.id)
    assert (deleted.moved_to, deleted.moved_api_keys) == (default.id, 1)
    assert client.api_keys.get(key.id).project_id == default.id
    with pytest.raises(NotFoundError):
        client.projects.get(web.id)
    with pytest.raises(LookupError):
        client.projects.resolve("web")
    with pytest.raises(ValueError, match="nothing to change"):
        client.projects.update(default.id)


@pytest.mark.anyio
async def test_async_client_manages_projects(async_client: AsyncRunTools) -> None:
    created = await async_client.projects.create("api")
    assert [p.name for p in await async_client.projects.list()] == ["Default", "api"]
    assert (await async_client.projects.resolve(created.id)).name == "api"
    assert (await async_client.projects.rename(created.id, "api-2")).name == "api-2"
    assert (await async_client.projects.get(created.id)).name == "api-2"
    assert (await async_client.projects.delete(created.id)).moved_api_keys == 0


def test_sync_client_sets_and_reads_the_key_policy(
    client: RunTools, secret_registry: SecretRegistry
) -> None:
    assert client.organizations.policy().max_key_lifetime is None
    changed = client.organizations.set_policy(max_key_lifetime="30d", require_key_expiry=True)
    assert (changed.max_key_lifetime, changed.require_key_expiry) == ("30d", True)
    with pytest.raises(PermissionDeniedError, match="at most 30d"):
        client.api_keys.create(name="forever")
    made = client.api_keys.create(name="month", expires_in="30d")
    secret_registry.add(made.key)
    assert [e.action for e in client.api_keys.events(made.id)] == ["api_key.created"]
    kept = client.organizations.set_policy(max_key_lifetime=None)
    assert (kept.max_key_lifetime, kept.require_key_expiry) == (None, True)
    assert client.organizations.policy() == kept


@pytest.mark.anyio
async def test_async_client_sets_the_key_policy(async_client: AsyncRunTools) -> None:
    changed = await async_client.organizations.set_policy(require_key_expiry=True)
    assert changed.require_key_expiry is True
    assert (await async_client.organizations.policy()).max_key_lifetime is None
