"""``rt.api_keys`` against a server speaking the wire contract."""

from __future__ import annotations

import pytest

from runtools import ApiKey, AsyncRunTools, CreatedApiKey, NotFoundError, RotatedApiKey, RunTools

from ..fake_server import FakeRunTools


def test_create_returns_the_secret_once(client: RunTools, fake: FakeRunTools) -> None:
    created = client.api_keys.create(
        "ci-production", scopes=["sandbox:*"], expires_in="30d", is_test=True
    )
    assert isinstance(created, CreatedApiKey)
    assert created.key.startswith("rt_test_")
    assert created.key_prefix == created.key[:12]
    assert created.message
    assert "Store" in created.message
    assert created.scopes == ["sandbox:*"]
    assert created.status == "active"
    assert created.created_at is not None
    assert created.created_at.tzinfo is not None
    assert created.key not in repr(created)
    sent = fake.requests_to("POST", "/v1/api-keys")[0].body
    assert sent == {
        "name": "ci-production",
        "scopes": ["sandbox:*"],
        "expiresIn": "30d",
        "isTest": True,
    }


def test_create_sends_only_what_was_given(client: RunTools, fake: FakeRunTools) -> None:
    client.api_keys.create("plain")
    assert fake.requests_to("POST", "/v1/api-keys")[0].body == {"name": "plain"}


def test_get_never_includes_the_secret(client: RunTools) -> None:
    created = client.api_keys.create("ci")
    fetched = client.api_keys.get(created.id)
    assert type(fetched) is ApiKey
    assert not hasattr(fetched, "key")
    assert fetched.id == created.id


def test_update_sends_only_the_fields_given(client: RunTools, fake: FakeRunTools) -> None:
    created = client.api_keys.create("ci", project_id="prj_1")
    renamed = client.api_keys.update(created.id, name="ci-2")
    assert renamed.name == "ci-2"
    assert renamed.project_id == "prj_1"
    detached = client.api_keys.update(created.id, project_id=None)
    assert detached.project_id is None
    bodies = [r.body for r in fake.requests_to("PATCH", f"/v1/api-keys/{created.id}")]
    assert bodies == [{"name": "ci-2"}, {"projectId": None}]


def test_revoke_returns_the_revoked_key(client: RunTools) -> None:
    created = client.api_keys.create("ci")
    revoked = client.api_keys.revoke(created.id)
    assert revoked.status == "revoked"
    assert revoked.revoked_at is not None


def test_rotate_returns_the_successor_with_its_secret(client: RunTools, fake: FakeRunTools) -> None:
    old = client.api_keys.create("ci")
    new = client.api_keys.rotate(old.id, name="ci-next", grace_period="1h")
    assert isinstance(new, RotatedApiKey)
    assert new.rotated_from_id == old.id
    assert new.name == "ci-next"
    assert new.key != old.key
    assert new.message
    assert client.api_keys.get(old.id).rotated_to_id == new.id
    sent = fake.requests_to("POST", f"/v1/api-keys/{old.id}/rotate")[0].body
    assert sent == {"name": "ci-next", "gracePeriod": "1h"}


def test_unknown_key_is_not_found(client: RunTools) -> None:
    with pytest.raises(NotFoundError):
        client.api_keys.get("key_nope")


def test_an_id_cannot_reach_another_endpoint(client: RunTools, fake: FakeRunTools) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.api_keys.get("../me")
    assert caught.value.response.request.url.raw_path == b"/v1/api-keys/..%2Fme"
    assert fake.requests_to("GET", "/v1/me") == []


def test_an_empty_id_is_refused_before_sending(client: RunTools, fake: FakeRunTools) -> None:
    with pytest.raises(ValueError, match="key_id"):
        client.api_keys.revoke("")
    assert fake.requests == []


def test_list_walks_every_page(client: RunTools, fake: FakeRunTools) -> None:
    ids = [client.api_keys.create(f"k{i}").id for i in range(5)]
    assert [k.id for k in client.api_keys.list(limit=2)] == ids
    cursors = [r.query.get("cursor") for r in fake.requests_to("GET", "/v1/api-keys")]
    assert cursors == [None, "c_2", "c_4"]


def test_list_one_page_at_a_time(client: RunTools) -> None:
    for i in range(3):
        client.api_keys.create(f"k{i}")
    page = client.api_keys.list(limit=2).first_page()
    assert len(page.data) == 2
    assert page.has_more is True
    assert page.next_cursor == "c_2"
    assert page.request_id is not None
    rest = client.api_keys.list(limit=2, cursor=page.next_cursor).first_page()
    assert len(rest.data) == 1
    assert rest.has_more is False
    assert rest.next_cursor is None
    assert [len(p.data) for p in client.api_keys.list(limit=2).pages()] == [2, 1]


def test_list_is_lazy(client: RunTools, fake: FakeRunTools) -> None:
    client.api_keys.list()
    assert fake.requests == []


def test_list_all_is_sent_only_when_asked(client: RunTools, fake: FakeRunTools) -> None:
    client.api_keys.list().first_page()
    client.api_keys.list(all=True).first_page()
    queries = [r.query for r in fake.requests_to("GET", "/v1/api-keys")]
    assert queries == [{}, {"all": "true"}]


@pytest.mark.anyio
async def test_async_lifecycle(async_client: AsyncRunTools) -> None:
    created = await async_client.api_keys.create("ci", scopes=["*"])
    assert created.key
    assert (await async_client.api_keys.get(created.id)).name == "ci"
    assert (await async_client.api_keys.update(created.id, name="ci-2")).name == "ci-2"
    rotated = await async_client.api_keys.rotate(created.id)
    assert rotated.rotated_from_id == created.id
    assert (await async_client.api_keys.revoke(rotated.id)).status == "revoked"


@pytest.mark.anyio
async def test_async_list_walks_every_page(async_client: AsyncRunTools) -> None:
    ids = [(await async_client.api_keys.create(f"k{i}")).id for i in range(5)]
    assert [k.id async for k in async_client.api_keys.list(limit=2)] == ids
    page = await async_client.api_keys.list(limit=3).first_page()
    assert (len(page.data), page.has_more) == (3, True)
    assert [len(p.data) async for p in async_client.api_keys.list(limit=3).pages()] == [3, 2]
