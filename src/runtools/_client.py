"""The clients: :class:`RunTools` (blocking) and :class:`AsyncRunTools` (asyncio).

Both take the same settings and expose the same resources and method names;
they differ only in how they send and wait. Everything else lives in
:class:`~runtools._base_client.BaseClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import cached_property
from types import TracebackType
from typing import Any, Self

import httpx

from runtools._base_client import (
    DEFAULT_TIMEOUT,
    BaseClient,
    Envelope,
    RequestContent,
    connection_error,
    parse_envelope,
    status_error,
)
from runtools._credentials import StoredSessionCredential
from runtools._events import EVENT_STREAM, EventParser
from runtools._file_lock import LockTimeout
from runtools._login_store import LockedStore, LoginStoreError
from runtools._models import Me, SessionTokens
from runtools._retry import DEFAULT_MAX_RETRIES
from runtools._session_refresh import (
    login_ended_error,
    needs_refresh,
    refresh_request,
    refreshed_login,
    switched_login,
)
from runtools.resources.api_keys import ApiKeys, AsyncApiKeys
from runtools.resources.audit_logs import AsyncAuditLogs, AuditLogs
from runtools.resources.auth import AsyncAuth, Auth
from runtools.resources.invitations import AsyncInvitations, Invitations
from runtools.resources.organizations import AsyncOrganizations, Organizations
from runtools.resources.projects import AsyncProjects, Projects
from runtools.resources.sandboxes import AsyncSandboxes, Sandboxes
from runtools.resources.sessions import AsyncSessions, Sessions
from runtools.resources.ssh_keys import AsyncSshKeys, SshKeys
from runtools.resources.templates import AsyncTemplates, Templates

__all__ = ["AsyncRunTools", "RunTools"]


class RunTools(BaseClient):
    """A client for the RunTools API.

    Settings come from arguments, then environment variables, then defaults,
    read once when the client is made::

        from runtools import RunTools

        rt = RunTools()                       # RUNTOOLS_API_KEY, RUNTOOLS_API_URL
        print(rt.me().organization.name)
        created = rt.api_keys.create("ci-production", scopes=["sandbox:*"])
        print(created.key)                    # shown once: store it now
        for key in rt.api_keys.list():
            print(key.key_prefix, key.status)

    Args:
        api_key: An ``rt_live_…`` / ``rt_test_…`` key; defaults to ``RUNTOOLS_API_KEY``.
        access_token: A session token, instead of an API key.
        base_url: The server; defaults to ``RUNTOOLS_API_URL``, then ``http://127.0.0.1:8700``.
        auth_url: The auth service (every ``/v1/auth/…`` call: sign-in, refresh, sessions,
            sign-out); defaults to ``RUNTOOLS_AUTH_URL``, then ``base_url``.
        timeout: Seconds, or an ``httpx.Timeout``; ``None`` waits forever. Default 60.
        max_retries: Extra attempts after a retryable failure. Default 2.
        http_client: An ``httpx.Client`` to send with (proxies, transports,
            tests). The caller keeps ownership: :meth:`close` leaves it open.

    Raises:
        MissingCredentialsError: no key, token or stored login was found.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        base_url: str | None = None,
        auth_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            access_token=access_token,
            base_url=base_url,
            auth_url=auth_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()

    @cached_property
    def api_keys(self) -> ApiKeys:
        return ApiKeys(self)

    @cached_property
    def audit_logs(self) -> AuditLogs:
        return AuditLogs(self)

    @cached_property
    def sandbox(self) -> Sandboxes:
        return Sandboxes(self)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self)

    @cached_property
    def organizations(self) -> Organizations:
        return Organizations(self)

    @cached_property
    def projects(self) -> Projects:
        return Projects(self)

    @cached_property
    def ssh_keys(self) -> SshKeys:
        return SshKeys(self)

    @cached_property
    def templates(self) -> Templates:
        return Templates(self)

    @cached_property
    def invitations(self) -> Invitations:
        return Invitations(self)

    @cached_property
    def auth(self) -> Auth:
        return Auth(self)

    def me(self) -> Me:
        """Who this client is: organization, user, credential and effective scopes."""
        return self._request("GET", "/me").model(Me)

    def _refresh_session(self, credential: StoredSessionCredential, *, stale_token: str) -> None:
        """Trade the stored refresh token for a new pair, under the store's lock."""
        with credential.store.locked() as store:
            login = self._login_to_refresh(credential, store, stale_token)
            if login is None:
                return
            request = refresh_request(
                self._http,
                self.auth_url,
                login,
                headers=self._anonymous_headers(),
                timeout=self.timeout,
            )
            try:
                response = self._http.send(request)
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
            if response.status_code in (400, 401):
                raise login_ended_error(response, login.api_url)
            if not response.is_success:
                raise status_error(response)
            renewed = refreshed_login(login, parse_envelope(response))
            store.save(renewed)
            credential.adopt(renewed)

    def _fresh_access_token(self) -> str:
        """The session's access token; a stored login's is refreshed first if about to expire."""
        session = self._stored_session()
        if session is None:
            return self._given_access_token()
        if needs_refresh(session.login):
            self._refresh_session(session, stale_token=session.access_token)
        return session.access_token

    def _carry_stored_login(self, tokens: SessionTokens) -> None:
        """After a switch of organization: a stored login goes on as the new session."""
        credential = self._stored_session()
        if credential is None:
            return
        moved = switched_login(credential.login, tokens)
        with credential.store.locked() as store:
            store.save(moved)
        credential.adopt(moved)

    def close(self) -> None:
        """Close the connection pool, unless the caller passed its own ``http_client``."""
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

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> Envelope:
        return parse_envelope(
            self._send(
                method,
                path,
                params=params,
                json=json,
                idempotency_key=idempotency_key,
                retry=retry,
            )
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        content: RequestContent | None = None,
        content_type: str = "application/octet-stream",
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send with retries; a 2xx response, read, or the status error.

        ``retry=False`` for calls that must not run twice (commands) or whose
        refusals are final (a conflict that waiting will not fix).
        """
        session = self._stored_session()
        if session is not None and needs_refresh(session.login):
            self._refresh_session(session, stale_token=session.access_token)
        request = self._build_request(
            self._http,
            method,
            path,
            params=params,
            json=json,
            content=content,
            content_type=content_type,
            idempotency_key=idempotency_key,
        )
        retries_taken = 0
        refreshed_after_401 = False
        while True:
            try:
                response = self._http.send(request)
            except httpx.RequestError as exc:
                delay = self._delay_after_error(request, exc, retries_taken) if retry else None
                if delay is None:
                    raise connection_error(request, exc) from exc
                self._log_retry(request, type(exc).__name__, delay)
            else:
                if response.is_success:
                    return response
                if response.status_code == 401 and session is not None and not refreshed_after_401:
                    # The token may have been ended early or have expired in flight:
                    # one refresh, then the same request (and idempotency key) again.
                    response.close()
                    self._refresh_session(session, stale_token=self._bearer_of(request))
                    request.headers.update(session.auth_headers())
                    refreshed_after_401 = True
                    continue
                delay = (
                    self._delay_after_status(request, response, retries_taken) if retry else None
                )
                if delay is None:
                    raise status_error(response)
                response.close()
                self._log_retry(request, f"status {response.status_code}", delay)
            time.sleep(delay)
            retries_taken += 1

    def _download(self, path: str, *, params: Mapping[str, Any]) -> Iterator[bytes]:
        """GET a body as it comes, in pieces; never retried (a failed stream starts over)."""
        request = self._build_request(
            self._http, "GET", path, params=params, json=None, idempotency_key=None
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc
        try:
            if not response.is_success:
                response.read()
                raise status_error(response)
            try:
                yield from response.iter_bytes()
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
        finally:
            response.close()

    def _events(
        self, path: str, *, json: Mapping[str, Any]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """POST and read Server-Sent Events as they come; never retried."""
        request = self._build_request(
            self._http, "POST", path, params=None, json=json, idempotency_key=None
        )
        request.headers["Accept"] = EVENT_STREAM
        try:
            response = self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc
        try:
            if not response.is_success:
                response.read()
                raise status_error(response)
            parser = EventParser()
            try:
                for line in response.iter_lines():
                    yield from parser.feed(line)
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
        finally:
            response.close()


class AsyncRunTools(BaseClient):
    """The asyncio twin of :class:`RunTools`: same settings, same methods, awaited::

        from runtools import AsyncRunTools

        async with AsyncRunTools() as rt:
            me = await rt.me()
            async for key in rt.api_keys.list():
                print(key.key_prefix, key.status)

    ``http_client`` is an ``httpx.AsyncClient``; see :class:`RunTools` for the rest.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        base_url: str | None = None,
        auth_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            access_token=access_token,
            base_url=base_url,
            auth_url=auth_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()

    @cached_property
    def api_keys(self) -> AsyncApiKeys:
        return AsyncApiKeys(self)

    @cached_property
    def audit_logs(self) -> AsyncAuditLogs:
        return AsyncAuditLogs(self)

    @cached_property
    def sandbox(self) -> AsyncSandboxes:
        return AsyncSandboxes(self)

    @cached_property
    def sessions(self) -> AsyncSessions:
        return AsyncSessions(self)

    @cached_property
    def organizations(self) -> AsyncOrganizations:
        return AsyncOrganizations(self)

    @cached_property
    def projects(self) -> AsyncProjects:
        return AsyncProjects(self)

    @cached_property
    def ssh_keys(self) -> AsyncSshKeys:
        return AsyncSshKeys(self)

    @cached_property
    def templates(self) -> AsyncTemplates:
        return AsyncTemplates(self)

    @cached_property
    def invitations(self) -> AsyncInvitations:
        return AsyncInvitations(self)

    @cached_property
    def auth(self) -> AsyncAuth:
        return AsyncAuth(self)

    async def me(self) -> Me:
        """Who this client is: organization, user, credential and effective scopes."""
        return (await self._request("GET", "/me")).model(Me)

    async def _refresh_session(
        self, credential: StoredSessionCredential, *, stale_token: str
    ) -> None:
        """Trade the stored refresh token for a new pair, under the store's lock."""
        async with _locked(credential) as store:
            login = self._login_to_refresh(credential, store, stale_token)
            if login is None:
                return
            request = refresh_request(
                self._http,
                self.auth_url,
                login,
                headers=self._anonymous_headers(),
                timeout=self.timeout,
            )
            try:
                response = await self._http.send(request)
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
            if response.status_code in (400, 401):
                raise login_ended_error(response, login.api_url)
            if not response.is_success:
                raise status_error(response)
            renewed = refreshed_login(login, parse_envelope(response))
            store.save(renewed)
            credential.adopt(renewed)

    async def _fresh_access_token(self) -> str:
        """The session's access token; a stored login's is refreshed first if about to expire."""
        session = self._stored_session()
        if session is None:
            return self._given_access_token()
        if needs_refresh(session.login):
            await self._refresh_session(session, stale_token=session.access_token)
        return session.access_token

    async def _carry_stored_login(self, tokens: SessionTokens) -> None:
        """After a switch of organization: a stored login goes on as the new session."""
        credential = self._stored_session()
        if credential is None:
            return
        moved = switched_login(credential.login, tokens)
        async with _locked(credential) as store:
            store.save(moved)
        credential.adopt(moved)

    async def close(self) -> None:
        """Close the connection pool, unless the caller passed its own ``http_client``."""
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

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> Envelope:
        return parse_envelope(
            await self._send(
                method,
                path,
                params=params,
                json=json,
                idempotency_key=idempotency_key,
                retry=retry,
            )
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        content: RequestContent | None = None,
        content_type: str = "application/octet-stream",
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send with retries; a 2xx response, read, or the status error."""
        session = self._stored_session()
        if session is not None and needs_refresh(session.login):
            await self._refresh_session(session, stale_token=session.access_token)
        request = self._build_request(
            self._http,
            method,
            path,
            params=params,
            json=json,
            content=content,
            content_type=content_type,
            idempotency_key=idempotency_key,
        )
        retries_taken = 0
        refreshed_after_401 = False
        while True:
            try:
                response = await self._http.send(request)
            except httpx.RequestError as exc:
                delay = self._delay_after_error(request, exc, retries_taken) if retry else None
                if delay is None:
                    raise connection_error(request, exc) from exc
                self._log_retry(request, type(exc).__name__, delay)
            else:
                if response.is_success:
                    return response
                if response.status_code == 401 and session is not None and not refreshed_after_401:
                    # The token may have been ended early or have expired in flight:
                    # one refresh, then the same request (and idempotency key) again.
                    await response.aclose()
                    await self._refresh_session(session, stale_token=self._bearer_of(request))
                    request.headers.update(session.auth_headers())
                    refreshed_after_401 = True
                    continue
                delay = (
                    self._delay_after_status(request, response, retries_taken) if retry else None
                )
                if delay is None:
                    raise status_error(response)
                await response.aclose()
                self._log_retry(request, f"status {response.status_code}", delay)
            await asyncio.sleep(delay)
            retries_taken += 1

    async def _download(self, path: str, *, params: Mapping[str, Any]) -> AsyncIterator[bytes]:
        """GET a body as it comes, in pieces; never retried (a failed stream starts over)."""
        request = self._build_request(
            self._http, "GET", path, params=params, json=None, idempotency_key=None
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc
        try:
            if not response.is_success:
                await response.aread()
                raise status_error(response)
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
        finally:
            await response.aclose()

    async def _events(
        self, path: str, *, json: Mapping[str, Any]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """POST and read Server-Sent Events as they come; never retried."""
        request = self._build_request(
            self._http, "POST", path, params=None, json=json, idempotency_key=None
        )
        request.headers["Accept"] = EVENT_STREAM
        try:
            response = await self._http.send(request, stream=True)
        except httpx.RequestError as exc:
            raise connection_error(request, exc) from exc
        try:
            if not response.is_success:
                await response.aread()
                raise status_error(response)
            parser = EventParser()
            try:
                async for line in response.aiter_lines():
                    for event in parser.feed(line):
                        yield event
            except httpx.RequestError as exc:
                raise connection_error(request, exc) from exc
        finally:
            await response.aclose()


@contextlib.asynccontextmanager
async def _locked(credential: StoredSessionCredential) -> AsyncIterator[LockedStore]:
    """The login store, under its lock, without blocking the event loop while waiting."""
    lock = credential.store.lock()
    try:
        await lock.acquire_async()
    except LockTimeout as exc:
        raise LoginStoreError(f"Another runtools process holds {lock.path}") from exc
    try:
        yield credential.store.locked_view()
    finally:
        lock.release()
