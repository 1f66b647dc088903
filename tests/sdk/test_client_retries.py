"""Retries over real HTTP: which failures repeat, how long the client waits, and
that a repeated create is recognised by its idempotency key."""

from __future__ import annotations

import socket

import pytest

from runtools import (
    APIConnectionError,
    APITimeoutError,
    AsyncRunTools,
    BadRequestError,
    ConflictError,
    InternalServerError,
    RateLimitError,
    RunTools,
)

from .fake_server import FakeRunTools, Fault

NOW = {"Retry-After": "0"}  # retry at once, so tests do not sleep through backoff


def test_rate_limit_then_success_waits_as_told(client: RunTools, fake: FakeRunTools) -> None:
    fake.fail_next("GET", "/v1/me", Fault(429, "rate_limited", headers={"Retry-After": "1"}))
    client.me()
    first, second = fake.requests_to("GET", "/v1/me")
    assert second.at - first.at >= 0.9


@pytest.mark.anyio
async def test_async_rate_limit_then_success(
    async_client: AsyncRunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(429, "rate_limited", headers=NOW))
    await async_client.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 2


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_transient_failures_are_retried(client: RunTools, fake: FakeRunTools, status: int) -> None:
    fake.fail_next("GET", "/v1/me", Fault(status, headers=NOW), times=2)
    client.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 3


def test_retries_stop_at_max_retries(client: RunTools, fake: FakeRunTools) -> None:
    fake.fail_next("GET", "/v1/me", Fault(503, headers=NOW), times=3)
    with pytest.raises(InternalServerError):
        client.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 3


def test_max_retries_zero_fails_on_the_first_answer(
    server_url: str, api_key: str, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(409, "conflict", headers=NOW))
    rt = RunTools(api_key=api_key, base_url=server_url, max_retries=0)
    with rt, pytest.raises(ConflictError):
        rt.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 1


def test_a_client_error_is_not_retried(client: RunTools, fake: FakeRunTools) -> None:
    fake.fail_next("GET", "/v1/me", Fault(400, "invalid_request"))
    with pytest.raises(BadRequestError):
        client.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 1


def test_a_long_retry_after_is_handed_to_the_caller(client: RunTools, fake: FakeRunTools) -> None:
    fake.fail_next("GET", "/v1/me", Fault(429, "rate_limited", headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError) as caught:
        client.me()
    assert caught.value.retry_after == 120.0
    assert len(fake.requests_to("GET", "/v1/me")) == 1


def test_a_create_keeps_one_idempotency_key_across_attempts(
    client: RunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("POST", "/v1/api-keys", Fault(503, headers=NOW), times=2)
    client.api_keys.create("ci")
    attempts = fake.requests_to("POST", "/v1/api-keys")
    assert len(attempts) == 3
    assert len({a.headers["idempotency-key"] for a in attempts}) == 1


@pytest.mark.anyio
async def test_async_create_keeps_one_idempotency_key_across_attempts(
    async_client: AsyncRunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("POST", "/v1/api-keys", Fault(500, headers=NOW))
    await async_client.api_keys.create("ci")
    attempts = fake.requests_to("POST", "/v1/api-keys")
    assert len(attempts) == 2
    assert attempts[0].headers["idempotency-key"] == attempts[1].headers["idempotency-key"]


def test_a_lost_create_response_does_not_create_twice(client: RunTools, fake: FakeRunTools) -> None:
    # The server did the work, then the answer was lost on the way back.
    fake.fail_next("POST", "/v1/api-keys", Fault(502, headers=NOW, after_handling=True))
    created = client.api_keys.create("ci")
    assert list(fake.keys) == [created.id]


def test_a_rotate_keeps_one_idempotency_key_across_attempts(
    client: RunTools, fake: FakeRunTools
) -> None:
    old = client.api_keys.create("ci")
    path = f"/v1/api-keys/{old.id}/rotate"
    fake.fail_next("POST", path, Fault(503, headers=NOW, after_handling=True))
    new = client.api_keys.rotate(old.id)
    attempts = fake.requests_to("POST", path)
    assert len({a.headers["idempotency-key"] for a in attempts}) == 1
    assert len(fake.keys) == 2
    assert new.rotated_from_id == old.id


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_refused_connections_become_api_connection_error() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    rt = RunTools(api_key="rt_test_x", base_url=url, max_retries=1)
    with rt, pytest.raises(APIConnectionError) as caught:
        rt.me()
    assert not isinstance(caught.value, APITimeoutError)
    assert caught.value.__cause__ is not None


@pytest.mark.anyio
async def test_async_refused_connections_become_api_connection_error() -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    async with AsyncRunTools(api_key="rt_test_x", base_url=url, max_retries=0) as rt:
        with pytest.raises(APIConnectionError):
            await rt.me()


def test_a_slow_server_becomes_api_timeout_error(
    server_url: str, api_key: str, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(500, delay=0.5), times=2)
    rt = RunTools(api_key=api_key, base_url=server_url, timeout=0.1, max_retries=1)
    with rt, pytest.raises(APITimeoutError):
        rt.me()
    assert len(fake.requests_to("GET", "/v1/me")) == 2


@pytest.mark.anyio
async def test_async_slow_server_becomes_api_timeout_error(
    server_url: str, api_key: str, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(500, delay=0.5))
    rt = AsyncRunTools(api_key=api_key, base_url=server_url, timeout=0.1, max_retries=0)
    async with rt:
        with pytest.raises(APITimeoutError):
            await rt.me()
