"""Signing in from a terminal: the OAuth 2.0 device authorization grant (RFC 8628).

No credential is needed to start; the person approves the shown code in a
browser (or with ``runtools auth approve CODE`` where they are signed in)::

    from runtools import DeviceLogin

    with DeviceLogin() as login:
        grant = login.start()
        print(f"Open {grant.verification_uri} and enter {grant.user_code}")
        tokens = login.wait(grant)          # polls, honouring interval and slow_down
    rt = RunTools(access_token=tokens.access_token)

These endpoints speak OAuth, not the API's envelope: form bodies and
``{"error": "authorization_pending", ...}`` answers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx
import pydantic

from runtools._base_client import (
    API_URL_ENV,
    AUTH_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    _normalise_url,
    connection_error,
    status_error,
)
from runtools._exceptions import APIResponseValidationError, DeviceLoginError
from runtools._models import DeviceAuthorization, SessionTokens
from runtools._version import __version__

__all__ = ["CLIENT_ID", "AsyncDeviceLogin", "DeviceLogin", "DeviceLoginError"]

CLIENT_ID = "runtools-cli"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.5: each slow_down adds five seconds to the interval.
SLOW_DOWN_STEP = 5
_PENDING = "authorization_pending"
_SLOW_DOWN = "slow_down"


def _auth_url(auth_url: str | None, base_url: str | None) -> str:
    env = os.environ
    value = auth_url or env.get(AUTH_URL_ENV) or base_url or env.get(API_URL_ENV)
    return _normalise_url(value or DEFAULT_BASE_URL, setting="auth_url")


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _read(response: httpx.Response, model: type[Any]) -> Any:
    try:
        return model.model_validate(response.json())
    except (ValueError, pydantic.ValidationError) as exc:
        raise APIResponseValidationError(
            response, f"Unexpected device sign-in response: {exc}"
        ) from exc


def _outcome(response: httpx.Response) -> SessionTokens | str:
    """Tokens, or ``"authorization_pending"`` / ``"slow_down"``; anything else raises."""
    if response.is_success:
        tokens: SessionTokens = _read(response, SessionTokens)
        return tokens
    error = _oauth_error(response)
    if response.status_code == 400 and error in (_PENDING, _SLOW_DOWN):
        return error
    if response.status_code in (400, 401) and error:
        description = response.json().get("error_description")
        raise DeviceLoginError(error, description if isinstance(description, str) else None)
    raise status_error(response)


class _DeviceLoginBase:
    def __init__(
        self,
        *,
        base_url: str | None,
        auth_url: str | None,
        client_id: str,
        timeout: float | httpx.Timeout | None,
    ) -> None:
        self.auth_url = _auth_url(auth_url, base_url)
        self.client_id = client_id
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"runtools-python/{__version__}",
        }

    def _start_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            "POST",
            f"{self.auth_url}/v1/auth/device/code",
            data={"client_id": self.client_id},
            headers=self._headers,
            timeout=self.timeout,
        )

    def _poll_request(
        self, http: httpx.Client | httpx.AsyncClient, grant: DeviceAuthorization
    ) -> httpx.Request:
        return http.build_request(
            "POST",
            f"{self.auth_url}/v1/auth/token",
            data={
                "grant_type": GRANT_TYPE,
                "device_code": grant.device_code,
                "client_id": self.client_id,
            },
            headers=self._headers,
            timeout=self.timeout,
        )

    @staticmethod
    def _started(response: httpx.Response) -> DeviceAuthorization:
        if not response.is_success:
            error = _oauth_error(response)
            if error and response.status_code in (400, 401):
                raise DeviceLoginError(error, response.json().get("error_description"))
            raise status_error(response)
        grant: DeviceAuthorization = _read(response, DeviceAuthorization)
        return grant


class DeviceLogin(_DeviceLoginBase):
    """Start and finish a device sign-in (blocking). See the module docstring."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        auth_url: str | None = None,
        client_id: str = CLIENT_ID,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url=base_url, auth_url=auth_url, client_id=client_id, timeout=timeout)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._sleep = sleep

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._http.send(request)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc

    def start(self) -> DeviceAuthorization:
        return self._started(self._send(self._start_request(self._http)))

    def poll(self, grant: DeviceAuthorization) -> SessionTokens | str:
        """One poll: tokens, or ``"authorization_pending"`` or ``"slow_down"``."""
        return _outcome(self._send(self._poll_request(self._http, grant)))

    def wait(
        self, grant: DeviceAuthorization, *, on_poll: Callable[[str], None] | None = None
    ) -> SessionTokens:
        """Poll every ``interval`` seconds (longer after ``slow_down``) until tokens come."""
        interval = max(1, grant.interval)
        deadline = time.monotonic() + grant.expires_in
        while time.monotonic() < deadline:
            self._sleep(interval)
            outcome = self.poll(grant)
            if isinstance(outcome, SessionTokens):
                return outcome
            if outcome == _SLOW_DOWN:
                interval += SLOW_DOWN_STEP
            if on_poll is not None:
                on_poll(outcome)
        raise DeviceLoginError("expired_token", None)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncDeviceLogin(_DeviceLoginBase):
    """The asyncio twin of :class:`DeviceLogin`."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        auth_url: str | None = None,
        client_id: str = CLIENT_ID,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url=base_url, auth_url=auth_url, client_id=client_id, timeout=timeout)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._http.send(request)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc

    async def start(self) -> DeviceAuthorization:
        return self._started(await self._send(self._start_request(self._http)))

    async def poll(self, grant: DeviceAuthorization) -> SessionTokens | str:
        return _outcome(await self._send(self._poll_request(self._http, grant)))

    async def wait(
        self, grant: DeviceAuthorization, *, on_poll: Callable[[str], None] | None = None
    ) -> SessionTokens:
        interval = max(1, grant.interval)
        deadline = time.monotonic() + grant.expires_in
        while time.monotonic() < deadline:
            await asyncio.sleep(interval)
            outcome = await self.poll(grant)
            if isinstance(outcome, SessionTokens):
                return outcome
            if outcome == _SLOW_DOWN:
                interval += SLOW_DOWN_STEP
            if on_poll is not None:
                on_poll(outcome)
        raise DeviceLoginError("expired_token", None)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
