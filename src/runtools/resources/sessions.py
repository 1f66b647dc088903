"""``rt.sessions``: your signed-in sessions, and ending them.

These calls take a session (``runtools login``, or ``access_token=``); an
API key gets ``PermissionDeniedError``.
"""

from __future__ import annotations

from runtools._models import Session
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment

__all__ = ["AsyncSessions", "Sessions"]

_PATH = "/auth/sessions"


def _revoked(data: object) -> int:
    count = data.get("revoked") if isinstance(data, dict) else None
    return count if isinstance(count, int) else 0


class Sessions(SyncResource):
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> SyncPager[Session]:
        """Your live sessions in every organization; ``current`` marks this one."""

        def fetch(page_cursor: str | None) -> CursorPage[Session]:
            params = {"limit": limit, "cursor": page_cursor}
            return self._client._request("GET", _PATH, params=params).page(Session)

        return SyncPager(fetch, cursor=cursor)

    def revoke(self, session_id: str) -> None:
        """End one session (another device's, or this one)."""
        self._client._request("DELETE", f"{_PATH}/{path_segment(session_id, name='session_id')}")

    def revoke_others(self) -> int:
        """End every session of yours except this one; returns how many ended."""
        return _revoked(self._client._request("DELETE", _PATH).data)


class AsyncSessions(AsyncResource):
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncPager[Session]:
        """Your live sessions in every organization; ``current`` marks this one."""

        async def fetch(page_cursor: str | None) -> CursorPage[Session]:
            params = {"limit": limit, "cursor": page_cursor}
            return (await self._client._request("GET", _PATH, params=params)).page(Session)

        return AsyncPager(fetch, cursor=cursor)

    async def revoke(self, session_id: str) -> None:
        """End one session (another device's, or this one)."""
        path = f"{_PATH}/{path_segment(session_id, name='session_id')}"
        await self._client._request("DELETE", path)

    async def revoke_others(self) -> int:
        """End every session of yours except this one; returns how many ended."""
        return _revoked((await self._client._request("DELETE", _PATH)).data)
