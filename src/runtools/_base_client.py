"""Configuration and the request/response plumbing shared by both clients.

:class:`BaseClient` resolves settings (argument → environment variable →
default) when a client is constructed, builds requests, decides retries and
turns responses into envelopes or exceptions. It performs no I/O: the sync
and async clients own the sending and the sleeping, so both stay thin.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pydantic

from runtools._credentials import (
    AccessTokenCredential,
    Credential,
    StoredSessionCredential,
    resolve_credential,
)
from runtools._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    MissingCredentialsError,
    make_status_error,
)
from runtools._login_store import LockedStore, StoredLogin
from runtools._models import RunToolsModel
from runtools._pagination import CursorPage
from runtools._retry import (
    IDEMPOTENCY_HEADER,
    is_retry_safe,
    is_retryable_status,
    parse_retry_after,
    retry_delay,
)
from runtools._version import __version__

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "BaseClient", "Envelope"]

log = logging.getLogger("runtools")

DEFAULT_BASE_URL = "http://127.0.0.1:8700"
DEFAULT_TIMEOUT = httpx.Timeout(60.0)
API_URL_ENV = "RUNTOOLS_API_URL"
AUTH_URL_ENV = "RUNTOOLS_AUTH_URL"
API_PREFIX = "/v1"
# Calls under this path go to ``auth_url``: the auth service may live apart from the API.
AUTH_PATH = "/auth/"

#: A body sent as it is produced (an iterator) or at once (bytes).
RequestContent = bytes | Iterable[bytes] | AsyncIterable[bytes]
ModelT = TypeVar("ModelT", bound=RunToolsModel)


def _normalise_url(value: str, *, setting: str) -> str:
    """Validate a server URL and drop a trailing slash or ``/v1``.

    ``RUNTOOLS_API_URL`` names the server's root; tolerating ``…/v1`` saves
    a confusing ``/v1/v1/me`` 404 for anyone who copied a full endpoint.
    """
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:  # a port that is not a number, an unclosed [IPv6 address
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{setting} must be an http:// or https:// URL, got {value!r}")
    text = str(url).rstrip("/")
    if text.endswith(API_PREFIX):
        text = text[: -len(API_PREFIX)]
    return text


@dataclass(frozen=True)
class Envelope:
    """A successful ``{"data": ..., "meta": ...}`` response, before typing."""

    body: dict[str, Any]
    response: httpx.Response

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.body.get("meta")
        return meta if isinstance(meta, dict) else {}

    @property
    def request_id(self) -> str | None:
        request_id = self.meta.get("requestId")
        if isinstance(request_id, str):
            return request_id
        header: str | None = self.response.headers.get("x-request-id")
        return header

    def model(self, model: type[ModelT], **extra: Any) -> ModelT:
        """``data`` as ``model``; ``extra`` adds fields from outside ``data``."""
        data = self.data
        if not isinstance(data, dict):
            raise self._invalid(f"expected an object in 'data', got {type(data).__name__}")
        return self._validate(model, {**data, **extra})

    def page(self, model: type[ModelT]) -> CursorPage[ModelT]:
        data = self.data
        if not isinstance(data, list):
            raise self._invalid(f"expected a list in 'data', got {type(data).__name__}")
        next_cursor = self.meta.get("nextCursor")
        return CursorPage(
            data=[self._validate(model, item) for item in data],
            has_more=bool(self.meta.get("hasMore", False)),
            next_cursor=next_cursor if isinstance(next_cursor, str) else None,
            request_id=self.request_id,
        )

    def _validate(self, model: type[ModelT], value: Any) -> ModelT:
        try:
            return model.model_validate(value)
        except pydantic.ValidationError as exc:
            raise self._invalid(f"data is not a valid {model.__name__}: {exc}") from exc

    def _invalid(self, detail: str) -> APIResponseValidationError:
        return APIResponseValidationError(self.response, f"Unexpected response body: {detail}")


def parse_envelope(response: httpx.Response) -> Envelope:
    """Read a 2xx response's JSON envelope."""
    try:
        body = response.json()
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError
        raise APIResponseValidationError(
            response, "Response body is not JSON; is the URL a RunTools server?"
        ) from exc
    if not isinstance(body, dict) or "data" not in body:
        raise APIResponseValidationError(response, "Response body has no 'data' envelope")
    return Envelope(body=body, response=response)


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for a non-2xx response, read from its ``{"error": ...}`` body."""
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        request_id = error.get("requestId") if isinstance(error.get("requestId"), str) else None
    return make_status_error(
        response,
        code=code,
        message=message or response.reason_phrase or f"HTTP {response.status_code}",
        request_id=request_id or response.headers.get("x-request-id"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def connection_error(request: httpx.Request, exc: httpx.RequestError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(request)
    detail = str(exc)
    return APIConnectionError(request, f"Connection error: {detail}" if detail else None)


def _is_retryable_exception(exc: httpx.RequestError) -> bool:
    # A URL scheme httpx cannot speak will not start working on the next attempt.
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


class BaseClient:
    """Settings and request plumbing common to :class:`RunTools` and :class:`AsyncRunTools`."""

    base_url: str
    auth_url: str
    timeout: httpx.Timeout
    max_retries: int

    def __init__(
        self,
        *,
        api_key: str | None,
        access_token: str | None,
        base_url: str | None,
        auth_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
    ) -> None:
        env = os.environ  # read now, per client: never at import time
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = _normalise_url(
            base_url or env.get(API_URL_ENV) or DEFAULT_BASE_URL, setting="base_url"
        )
        # The auth service is the API server itself unless configured apart.
        self.auth_url = _normalise_url(
            auth_url or env.get(AUTH_URL_ENV) or self.base_url, setting="auth_url"
        )
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._credential: Credential = resolve_credential(
            api_key=api_key, access_token=access_token, environ=env, api_url=self.base_url
        )
        self._random: Callable[[], float] = random.random

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, credential={self._credential!r})"

    @property
    def credential(self) -> Credential:
        """What this client authenticates with (its repr hides the secret)."""
        return self._credential

    def _default_headers(self) -> dict[str, str]:
        return {**self._anonymous_headers(), **self._credential.auth_headers()}

    @staticmethod
    def _anonymous_headers() -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": f"runtools-python/{__version__}"}

    def _given_access_token(self) -> str:
        """The access token this client was given; a client on an API key has none."""
        credential = self._credential
        if isinstance(credential, AccessTokenCredential):
            return credential.token
        raise ValueError(
            "This client authenticates with an API key, which is not a session: it has no "
            "access token (send the key itself, as X-API-Key)"
        )

    def _stored_session(self) -> StoredSessionCredential | None:
        credential = self._credential
        return credential if isinstance(credential, StoredSessionCredential) else None

    @staticmethod
    def _bearer_of(request: httpx.Request) -> str:
        header: str = request.headers.get("authorization", "")
        return header.removeprefix("Bearer ")

    @staticmethod
    def _login_to_refresh(
        credential: StoredSessionCredential, store: LockedStore, stale_token: str
    ) -> StoredLogin | None:
        """Under the store's lock: the login to refresh, or None if another process just did.

        A login that vanished from the store was signed out (``runtools logout``).
        """
        from runtools._session_refresh import needs_refresh

        current = store.get(credential.login.api_url)
        if current is None or current.type != "session":
            raise MissingCredentialsError()
        if current.access_token != stale_token and not needs_refresh(current):
            credential.adopt(current)
            return None
        return current

    def _build_request(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Mapping[str, Any] | None,
        idempotency_key: str | None,
        content: RequestContent | None = None,
        content_type: str = "application/octet-stream",
    ) -> httpx.Request:
        headers = self._default_headers()
        if content is not None:
            headers["Content-Type"] = content_type
        if method.upper() == "POST":
            # One key per logical call: the same request object, and so the
            # same key, is sent on every attempt.
            headers[IDEMPOTENCY_HEADER] = idempotency_key or str(uuid.uuid4())
        query = {k: v for k, v in (params or {}).items() if v is not None}
        root = self.auth_url if path.startswith(AUTH_PATH) else self.base_url
        return http.build_request(
            method,
            root + API_PREFIX + path,
            params=query or None,
            json=json,
            content=content,
            headers=headers,
            timeout=self.timeout,
        )

    def _delay_after_error(
        self, request: httpx.Request, exc: httpx.RequestError, retries_taken: int
    ) -> float | None:
        if not _is_retryable_exception(exc) or not is_retry_safe(request.method, request.headers):
            return None
        return retry_delay(
            retries_taken=retries_taken,
            max_retries=self.max_retries,
            retry_after=None,
            random=self._random,
        )

    def _delay_after_status(
        self, request: httpx.Request, response: httpx.Response, retries_taken: int
    ) -> float | None:
        if not is_retryable_status(response.status_code):
            return None
        if not is_retry_safe(request.method, request.headers):
            return None
        return retry_delay(
            retries_taken=retries_taken,
            max_retries=self.max_retries,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            random=self._random,
        )

    @staticmethod
    def _log_retry(request: httpx.Request, reason: str, delay: float) -> None:
        log.info(
            "Retrying %s %s in %.2fs after %s", request.method, request.url.path, delay, reason
        )
