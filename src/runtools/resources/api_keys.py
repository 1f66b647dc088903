"""``rt.api_keys``: create, list, inspect, rename, rotate and revoke API keys.

The secret of a key is returned once, by :meth:`ApiKeys.create` and
:meth:`ApiKeys.rotate` (``result.key``); every other call returns an
:class:`~runtools.ApiKey` without it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from runtools._base_client import Envelope
from runtools._models import (
    ApiKey,
    AuditLogEntry,
    CreatedApiKey,
    KeyUsageDay,
    RevokedApiKey,
    RotatedApiKey,
)
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment
from runtools._types import NOT_GIVEN, NotGiven

__all__ = ["ApiKeys", "AsyncApiKeys"]

_PATH = "/api-keys"


def _revoked(response: Envelope) -> RevokedApiKey:
    return response.model(RevokedApiKey, blastRadius=response.meta.get("blastRadius"))


def _key_path(key_id: str, suffix: str = "") -> str:
    return f"{_PATH}/{path_segment(key_id, name='key_id')}{suffix}"


def _create_body(
    name: str,
    scopes: Sequence[str] | None,
    expires_in: str | None,
    is_test: bool | None,
    project_id: str | None,
    rate_limit: int | None,
    *,
    allow_browser: bool | None = None,
    allowed_cidrs: Sequence[str] | None = None,
    is_canary: bool | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if allow_browser is not None:
        body["allowBrowser"] = allow_browser
    if allowed_cidrs is not None:
        body["allowedCidrs"] = list(allowed_cidrs)
    if is_canary is not None:
        body["isCanary"] = is_canary
    if scopes is not None:
        body["scopes"] = list(scopes)
    if expires_in is not None:
        body["expiresIn"] = expires_in
    if is_test is not None:
        body["isTest"] = is_test
    if project_id is not None:
        body["projectId"] = project_id
    if rate_limit is not None:
        body["rateLimit"] = rate_limit
    return body


def _update_body(
    name: str | NotGiven,
    scopes: Sequence[str] | NotGiven,
    project_id: str | NotGiven | None,
    rate_limit: int | NotGiven | None,
    allow_browser: bool | NotGiven = NOT_GIVEN,
    allowed_cidrs: Sequence[str] | NotGiven | None = NOT_GIVEN,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if not isinstance(allow_browser, NotGiven):
        body["allowBrowser"] = allow_browser
    if not isinstance(allowed_cidrs, NotGiven):
        body["allowedCidrs"] = list(allowed_cidrs) if allowed_cidrs is not None else None
    if not isinstance(name, NotGiven):
        body["name"] = name
    if not isinstance(scopes, NotGiven):
        body["scopes"] = list(scopes)
    if not isinstance(project_id, NotGiven):
        body["projectId"] = project_id
    if not isinstance(rate_limit, NotGiven):
        body["rateLimit"] = rate_limit
    return body


def _rotate_body(
    name: str | None, expires_in: str | None, grace_period: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if expires_in is not None:
        body["expiresIn"] = expires_in
    if grace_period is not None:
        body["gracePeriod"] = grace_period
    return body


def _list_params(limit: int | None, cursor: str | None, all: bool) -> dict[str, Any]:
    # `all` is sent only when asked for: it is an admin-only option.
    return {"limit": limit, "cursor": cursor, "all": True if all else None}


class ApiKeys(SyncResource):
    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str] | None = None,
        expires_in: str | None = None,
        is_test: bool | None = None,
        project_id: str | None = None,
        rate_limit: int | None = None,
        allow_browser: bool | None = None,
        allowed_cidrs: Sequence[str] | None = None,
        is_canary: bool | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedApiKey:
        """Create a key. ``result.key`` is the secret, shown only this once.

        ``scopes`` defaults to the server's default (``["*"]``); ``expires_in``
        is a duration such as ``"30d"``, ``"90d"`` or ``"1y"``; ``rate_limit``
        (requests per minute) may be lower than the plan's default, never higher.
        ``allow_browser=True`` lets the key be used from a browser (refused by
        default); ``allowed_cidrs`` limits it to those networks
        (``["203.0.113.0/24"]``); ``is_canary=True`` makes a honeytoken that never
        works and raises a high-severity audit event whenever it is used.
        """
        envelope = self._client._request(
            "POST",
            _PATH,
            json=_create_body(
                name,
                scopes,
                expires_in,
                is_test,
                project_id,
                rate_limit,
                allow_browser=allow_browser,
                allowed_cidrs=allowed_cidrs,
                is_canary=is_canary,
            ),
            idempotency_key=idempotency_key,
        )
        return envelope.model(CreatedApiKey, message=envelope.body.get("message"))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, all: bool = False
    ) -> SyncPager[ApiKey]:
        """Your keys, or with ``all=True`` (admins) every key in the organization.

        Iterating the result walks every page; ``limit`` is the page size.
        """

        def fetch(page_cursor: str | None) -> CursorPage[ApiKey]:
            params = _list_params(limit, page_cursor, all)
            return self._client._request("GET", _PATH, params=params).page(ApiKey)

        return SyncPager(fetch, cursor=cursor)

    def get(self, key_id: str) -> ApiKey:
        return self._client._request("GET", _key_path(key_id)).model(ApiKey)

    def events(
        self, key_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> SyncPager[AuditLogEntry]:
        """The audit log about one key, newest first (its owner may read it, not only
        admins): made, changed, rotated, revoked (``reason`` says why, ``leaked`` for a
        secret scanning report, with ``details.url``), failed uses."""
        path = _key_path(key_id, "/events")

        def fetch(page_cursor: str | None) -> CursorPage[AuditLogEntry]:
            params = {"limit": limit, "cursor": page_cursor}
            return self._client._request("GET", path, params=params).page(AuditLogEntry)

        return SyncPager(fetch, cursor=cursor)

    def usage(self, key_id: str, *, days: int = 30) -> builtins.list[KeyUsageDay]:
        """The key's requests and refusals by day (UTC), oldest first, today last."""
        path = _key_path(key_id, "/usage")
        return self._client._request("GET", path, params={"days": days}).page(KeyUsageDay).data

    def update(
        self,
        key_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        scopes: Sequence[str] | NotGiven = NOT_GIVEN,
        project_id: str | NotGiven | None = NOT_GIVEN,
        rate_limit: int | NotGiven | None = NOT_GIVEN,
        allow_browser: bool | NotGiven = NOT_GIVEN,
        allowed_cidrs: Sequence[str] | NotGiven | None = NOT_GIVEN,
    ) -> ApiKey:
        """Change a key's name, scopes, project, rate limit or where it may be used from.

        ``project_id=None`` detaches it; ``rate_limit=None`` drops the key's own
        limit, so its organization's plan decides again; ``allowed_cidrs=None``
        (or ``[]``) lets it work from anywhere again.
        """
        body = _update_body(name, scopes, project_id, rate_limit, allow_browser, allowed_cidrs)
        return self._client._request("PATCH", _key_path(key_id), json=body).model(ApiKey)

    def revoke(self, key_id: str) -> RevokedApiKey:
        """Revoke a key now; the next request made with it fails.

        ``result.blast_radius`` tells what the key did in the last 30 days
        (its audited acts, refusals and source addresses).
        """
        return _revoked(self._client._request("DELETE", _key_path(key_id)))

    def rotate(
        self,
        key_id: str,
        *,
        name: str | None = None,
        expires_in: str | None = None,
        grace_period: str | None = None,
        idempotency_key: str | None = None,
    ) -> RotatedApiKey:
        """Replace a key with a new one; ``result.key`` is the new secret.

        The old key is revoked at once, or after ``grace_period`` (``"1h"``,
        ``"24h"``) so a deploy can switch over without downtime.
        """
        envelope = self._client._request(
            "POST",
            _key_path(key_id, "/rotate"),
            json=_rotate_body(name, expires_in, grace_period),
            idempotency_key=idempotency_key,
        )
        return envelope.model(RotatedApiKey, message=envelope.body.get("message"))


class AsyncApiKeys(AsyncResource):
    async def create(
        self,
        name: str,
        *,
        scopes: Sequence[str] | None = None,
        expires_in: str | None = None,
        is_test: bool | None = None,
        project_id: str | None = None,
        rate_limit: int | None = None,
        allow_browser: bool | None = None,
        allowed_cidrs: Sequence[str] | None = None,
        is_canary: bool | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedApiKey:
        """Create a key. ``result.key`` is the secret, shown only this once."""
        envelope = await self._client._request(
            "POST",
            _PATH,
            json=_create_body(
                name,
                scopes,
                expires_in,
                is_test,
                project_id,
                rate_limit,
                allow_browser=allow_browser,
                allowed_cidrs=allowed_cidrs,
                is_canary=is_canary,
            ),
            idempotency_key=idempotency_key,
        )
        return envelope.model(CreatedApiKey, message=envelope.body.get("message"))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, all: bool = False
    ) -> AsyncPager[ApiKey]:
        """Your keys, or with ``all=True`` (admins) every key in the organization.

        ``async for`` over the result walks every page; ``limit`` is the page size.
        """

        async def fetch(page_cursor: str | None) -> CursorPage[ApiKey]:
            params = _list_params(limit, page_cursor, all)
            return (await self._client._request("GET", _PATH, params=params)).page(ApiKey)

        return AsyncPager(fetch, cursor=cursor)

    async def get(self, key_id: str) -> ApiKey:
        return (await self._client._request("GET", _key_path(key_id))).model(ApiKey)

    def events(
        self, key_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[AuditLogEntry]:
        """The audit log about one key, newest first (see ``ApiKeys.events``)."""
        path = _key_path(key_id, "/events")

        async def fetch(page_cursor: str | None) -> CursorPage[AuditLogEntry]:
            params = {"limit": limit, "cursor": page_cursor}
            return (await self._client._request("GET", path, params=params)).page(AuditLogEntry)

        return AsyncPager(fetch, cursor=cursor)

    async def update(
        self,
        key_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        scopes: Sequence[str] | NotGiven = NOT_GIVEN,
        project_id: str | NotGiven | None = NOT_GIVEN,
        rate_limit: int | NotGiven | None = NOT_GIVEN,
        allow_browser: bool | NotGiven = NOT_GIVEN,
        allowed_cidrs: Sequence[str] | NotGiven | None = NOT_GIVEN,
    ) -> ApiKey:
        """Change a key's name, scopes, project, rate limit or where it may be used from.

        ``project_id=None`` detaches it; ``rate_limit=None`` drops the key's own
        limit, so its organization's plan decides again; ``allowed_cidrs=None``
        (or ``[]``) lets it work from anywhere again.
        """
        body = _update_body(name, scopes, project_id, rate_limit, allow_browser, allowed_cidrs)
        return (await self._client._request("PATCH", _key_path(key_id), json=body)).model(ApiKey)

    async def usage(self, key_id: str, *, days: int = 30) -> builtins.list[KeyUsageDay]:
        """The key's requests and refusals by day (UTC), oldest first, today last."""
        path = _key_path(key_id, "/usage")
        response = await self._client._request("GET", path, params={"days": days})
        return response.page(KeyUsageDay).data

    async def revoke(self, key_id: str) -> RevokedApiKey:
        """Revoke a key now; the next request made with it fails (see ``ApiKeys.revoke``)."""
        return _revoked(await self._client._request("DELETE", _key_path(key_id)))

    async def rotate(
        self,
        key_id: str,
        *,
        name: str | None = None,
        expires_in: str | None = None,
        grace_period: str | None = None,
        idempotency_key: str | None = None,
    ) -> RotatedApiKey:
        """Replace a key with a new one; ``result.key`` is the new secret."""
        envelope = await self._client._request(
            "POST",
            _key_path(key_id, "/rotate"),
            json=_rotate_body(name, expires_in, grace_period),
            idempotency_key=idempotency_key,
        )
        return envelope.model(RotatedApiKey, message=envelope.body.get("message"))
