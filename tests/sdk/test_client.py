"""What a client sends and how it answers, over real HTTP."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from runtools import AsyncRunTools, Me, RunTools, __version__

from .fake_server import FakeRunTools


def test_me_over_a_socket(client: RunTools) -> None:
    me = client.me()
    assert isinstance(me, Me)
    assert me.organization.name == "Acme"
    assert me.user is not None
    assert me.user.role == "admin"
    assert me.credential.type == "api_key"
    assert me.effective_scopes == ["*"]


@pytest.mark.anyio
async def test_async_me(async_client: AsyncRunTools) -> None:
    me = await async_client.me()
    assert me.credential.type == "api_key"


def test_fields_a_newer_server_adds_are_kept(client: RunTools) -> None:
    me = client.me()
    assert me.model_extra == {"featureFlags": {"newer": True}}


def test_api_key_travels_in_x_api_key_only(client: RunTools, fake: FakeRunTools) -> None:
    client.me()
    headers = fake.requests[-1].headers
    assert headers["x-api-key"] == fake.api_key
    assert "authorization" not in headers


def test_access_token_travels_as_bearer_only(server_url: str, fake: FakeRunTools) -> None:
    with RunTools(access_token=fake.access_token, base_url=server_url) as rt:
        assert rt.me().credential.type == "session"
    headers = fake.requests[-1].headers
    assert headers["authorization"] == f"Bearer {fake.access_token}"
    assert "x-api-key" not in headers


def test_requests_identify_the_sdk(client: RunTools, fake: FakeRunTools) -> None:
    client.me()
    assert fake.requests[-1].headers["user-agent"] == f"runtools-python/{__version__}"
    assert fake.requests[-1].path == "/v1/me"


def test_each_post_carries_its_own_idempotency_key(client: RunTools, fake: FakeRunTools) -> None:
    client.api_keys.create("one")
    client.api_keys.create("two")
    keys = [r.headers["idempotency-key"] for r in fake.requests_to("POST", "/v1/api-keys")]
    assert len(set(keys)) == 2


def test_a_caller_may_choose_the_idempotency_key(client: RunTools, fake: FakeRunTools) -> None:
    first = client.api_keys.create("deploy", idempotency_key="deploy-42")
    again = client.api_keys.create("deploy", idempotency_key="deploy-42")
    assert again.id == first.id
    assert len(fake.keys) == 1


def test_reads_carry_no_idempotency_key(client: RunTools, fake: FakeRunTools) -> None:
    client.me()
    assert "idempotency-key" not in fake.requests[-1].headers


def test_close_leaves_a_callers_http_client_open(server_url: str, api_key: str) -> None:
    with httpx.Client() as http:
        with RunTools(api_key=api_key, base_url=server_url, http_client=http) as rt:
            rt.me()
        assert not http.is_closed


def test_close_shuts_the_clients_own_pool(server_url: str, api_key: str) -> None:
    rt = RunTools(api_key=api_key, base_url=server_url)
    rt.me()
    rt.close()
    assert rt._http.is_closed


@pytest.mark.anyio
async def test_async_close_leaves_a_callers_http_client_open(
    asgi_app: Starlette, api_key: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app)) as http:
        async with AsyncRunTools(api_key=api_key, base_url="http://t", http_client=http) as rt:
            await rt.me()
        assert not http.is_closed
