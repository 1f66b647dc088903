"""Every non-2xx answer becomes one exception class, carrying the envelope's details."""

from __future__ import annotations

import pytest

from runtools import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AsyncRunTools,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunTools,
    RunToolsError,
)

from .fake_server import FakeRunTools, Fault

STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (405, APIStatusError),
    (409, ConflictError),
    (413, APIStatusError),
    (422, APIStatusError),
    (429, RateLimitError),
    (500, InternalServerError),
    (503, InternalServerError),
]


@pytest.fixture
def no_retry_client(server_url: str, api_key: str) -> RunTools:
    return RunTools(api_key=api_key, base_url=server_url, max_retries=0)


@pytest.mark.parametrize(("status", "error_class"), STATUS_CLASSES)
def test_each_status_maps_to_its_class(
    no_retry_client: RunTools,
    fake: FakeRunTools,
    status: int,
    error_class: type[APIStatusError],
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(status, "some_code", "Something precise"))
    with pytest.raises(APIStatusError) as caught:
        no_retry_client.me()
    error = caught.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.code == "some_code"
    assert error.message == "Something precise"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.request_id == error.response.headers["x-request-id"]
    assert "Something precise" in str(error)


def test_an_error_keeps_no_credential_in_its_request(
    no_retry_client: RunTools, fake: FakeRunTools, api_key: str
) -> None:
    # Exceptions get logged, printed and kept; httpx hides Authorization, not X-API-Key.
    fake.fail_next("GET", "/v1/me", Fault(404, "not_found", "Nothing here"))
    with pytest.raises(NotFoundError) as caught:
        no_retry_client.me()
    assert caught.value.request is caught.value.response.request  # as docs/sdk.md says
    assert caught.value.request.url.path == "/v1/me"
    headers = caught.value.request.headers
    assert headers["x-api-key"] == "[redacted]"
    assert api_key not in repr(headers)
    assert api_key not in str(dict(headers))
    assert no_retry_client.me().credential.type  # the client itself still sends its key
    closed = RunTools(api_key=api_key, base_url="http://127.0.0.1:9", max_retries=0)
    with closed, pytest.raises(APIConnectionError) as unreachable:
        closed.me()
    assert unreachable.value.request.headers["x-api-key"] == "[redacted]"


def test_bad_credentials_are_an_authentication_error(server_url: str) -> None:
    rt = RunTools(api_key="rt_test_wrong", base_url=server_url)
    with rt, pytest.raises(AuthenticationError) as caught:
        rt.me()
    assert caught.value.code == "unauthorized"
    assert caught.value.message == "Invalid or missing authentication"


@pytest.mark.anyio
async def test_async_not_found_carries_the_envelope(async_client: AsyncRunTools) -> None:
    with pytest.raises(NotFoundError) as caught:
        await async_client.api_keys.get("key_missing")
    assert caught.value.code == "not_found"
    assert caught.value.request_id is not None


def test_rate_limit_error_carries_retry_after(
    no_retry_client: RunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(429, "rate_limited", headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as caught:
        no_retry_client.me()
    assert caught.value.retry_after == 7.0


def test_rate_limit_without_retry_after(no_retry_client: RunTools, fake: FakeRunTools) -> None:
    fake.fail_next("GET", "/v1/me", Fault(429, "rate_limited"))
    with pytest.raises(RateLimitError) as caught:
        no_retry_client.me()
    assert caught.value.retry_after is None


def test_an_error_page_that_is_not_json_still_maps(
    no_retry_client: RunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(502, raw_body="<html>Bad gateway</html>"))
    with pytest.raises(InternalServerError) as caught:
        no_retry_client.me()
    assert caught.value.code is None
    assert caught.value.message == "Bad Gateway"
    assert caught.value.request_id is not None  # from the X-Request-Id header


def test_a_success_that_is_not_json_is_a_validation_error(
    no_retry_client: RunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(200, raw_body="<html>hello</html>"))
    with pytest.raises(APIResponseValidationError) as caught:
        no_retry_client.me()
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_success_of_the_wrong_shape_is_a_validation_error(
    no_retry_client: RunTools, fake: FakeRunTools
) -> None:
    fake.fail_next("GET", "/v1/me", Fault(200, raw_body='{"data": {"organization": 3}}'))
    with pytest.raises(APIResponseValidationError, match="Me"):
        no_retry_client.me()


def test_every_sdk_error_is_a_runtools_error() -> None:
    import runtools

    errors = [
        obj
        for name in runtools.__all__
        if isinstance(obj := getattr(runtools, name), type) and issubclass(obj, Exception)
    ]
    assert len(errors) == 16
    assert all(issubclass(e, RunToolsError) for e in errors)


def test_the_tree_in_the_docstring_matches_the_classes() -> None:
    import runtools._exceptions as module

    doc = module.__doc__ or ""
    for name in module.__all__:
        if name != "make_status_error":
            assert name in doc, name
