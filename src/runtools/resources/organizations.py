"""``rt.organizations``: your organizations, and the members of the one you act for.

A credential acts for one organization. Calls about "the" organization
(``get``, ``rename``, ``members``, …) take its id, and default to the
credential's own (one ``GET /v1/me`` to learn it). Changing roles and
removing members takes an admin; leaving takes a credential with ``*``.
"""

from __future__ import annotations

from typing import Literal

from runtools._models import Member, OrgMembership, OrgPolicy
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment

__all__ = ["AsyncOrganizations", "Organizations"]

_PATH = "/organizations"

Role = Literal["admin", "member"]


def _org_path(org_id: str) -> str:
    return f"{_PATH}/{path_segment(org_id, name='org_id')}"


def _member_path(org_id: str, user_id: str) -> str:
    return f"{_org_path(org_id)}/members/{path_segment(user_id, name='user_id')}"


class _Keep:
    """A policy field ``set_policy`` was not given: left as it is."""


KEEP = _Keep()


def _policy_body(
    max_key_lifetime: str | _Keep | None,
    require_key_expiry: bool | None,
    revoke_unused_after_days: int | _Keep | None = KEEP,
) -> dict[str, object]:
    body: dict[str, object] = {}
    if not isinstance(revoke_unused_after_days, _Keep):
        body["revokeUnusedAfterDays"] = revoke_unused_after_days
    if not isinstance(max_key_lifetime, _Keep):
        body["maxKeyLifetime"] = max_key_lifetime
    if require_key_expiry is not None:
        body["requireKeyExpiry"] = require_key_expiry
    return body


def _name(name: str) -> dict[str, str]:
    if not name.strip():
        raise ValueError("name must be a non-empty organization name")
    return {"name": name.strip()}


class Organizations(SyncResource):
    def list(self) -> list[OrgMembership]:
        """Every organization you belong to, with your role; ``current`` marks this one's."""
        return self._client._request("GET", _PATH).page(OrgMembership).data

    def create(self, name: str) -> OrgMembership:
        """A new organization, with you as its admin (needs a signed-in session)."""
        return self._client._request("POST", _PATH, json=_name(name)).model(OrgMembership)

    def get(self, org_id: str | None = None) -> OrgMembership:
        """The organization (default: this credential's), with your role in it."""
        return self._client._request("GET", _org_path(self._org(org_id))).model(OrgMembership)

    def rename(self, name: str, *, org_id: str | None = None) -> OrgMembership:
        """Rename the organization (admins)."""
        path = _org_path(self._org(org_id))
        return self._client._request("PATCH", path, json=_name(name)).model(OrgMembership)

    def members(
        self, *, org_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> SyncPager[Member]:
        """The organization's members and their roles, newest first."""
        path = f"{_org_path(self._org(org_id))}/members"

        def fetch(page_cursor: str | None) -> CursorPage[Member]:
            params = {"limit": limit, "cursor": page_cursor}
            return self._client._request("GET", path, params=params).page(Member)

        return SyncPager(fetch, cursor=cursor)

    def set_role(self, user_id: str, role: Role, *, org_id: str | None = None) -> Member:
        """Make a member an admin, or an admin a member (admins; never the last admin)."""
        path = _member_path(self._org(org_id), user_id)
        return self._client._request("PATCH", path, json={"role": role}).model(Member)

    def remove_member(self, user_id: str, *, org_id: str | None = None) -> Member:
        """Remove someone (admins): their sessions end, their keys stop; sandboxes stay."""
        path = _member_path(self._org(org_id), user_id)
        return self._client._request("DELETE", path).model(Member)

    def leave(self, *, org_id: str | None = None) -> Member:
        """Leave the organization: your sessions and keys in it stop working."""
        path = f"{_org_path(self._org(org_id))}/members/me/leave"
        return self._client._request("POST", path).model(Member)

    def policy(self, org_id: str | None = None) -> OrgPolicy:
        """What the organization requires of its keys (the longest lifetime, an expiry)."""
        path = f"{_org_path(self._org(org_id))}/policy"
        return self._client._request("GET", path).model(OrgPolicy)

    def set_policy(
        self,
        *,
        max_key_lifetime: str | _Keep | None = KEEP,
        require_key_expiry: bool | None = None,
        revoke_unused_after_days: int | _Keep | None = KEEP,
        org_id: str | None = None,
    ) -> OrgPolicy:
        """Set the key policy (admins): ``max_key_lifetime="90d"`` (None: no limit),
        ``require_key_expiry=True``, ``revoke_unused_after_days=90`` (None: never). Keys
        made or rotated from then on are held to the first two; keys left unused that
        long are revoked; what is not given is kept."""
        path = f"{_org_path(self._org(org_id))}/policy"
        body = _policy_body(max_key_lifetime, require_key_expiry, revoke_unused_after_days)
        return self._client._request("PATCH", path, json=body).model(OrgPolicy)

    def _org(self, org_id: str | None) -> str:
        return org_id if org_id is not None else self._client.me().organization.id


class AsyncOrganizations(AsyncResource):
    async def list(self) -> list[OrgMembership]:
        """Every organization you belong to, with your role; ``current`` marks this one's."""
        return (await self._client._request("GET", _PATH)).page(OrgMembership).data

    async def create(self, name: str) -> OrgMembership:
        """A new organization, with you as its admin (needs a signed-in session)."""
        envelope = await self._client._request("POST", _PATH, json=_name(name))
        return envelope.model(OrgMembership)

    async def get(self, org_id: str | None = None) -> OrgMembership:
        """The organization (default: this credential's), with your role in it."""
        path = _org_path(await self._org(org_id))
        return (await self._client._request("GET", path)).model(OrgMembership)

    async def rename(self, name: str, *, org_id: str | None = None) -> OrgMembership:
        """Rename the organization (admins)."""
        path = _org_path(await self._org(org_id))
        return (await self._client._request("PATCH", path, json=_name(name))).model(OrgMembership)

    def members(
        self, *, org_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[Member]:
        """The organization's members and their roles, newest first."""

        async def fetch(page_cursor: str | None) -> CursorPage[Member]:
            path = f"{_org_path(await self._org(org_id))}/members"
            params = {"limit": limit, "cursor": page_cursor}
            return (await self._client._request("GET", path, params=params)).page(Member)

        return AsyncPager(fetch, cursor=cursor)

    async def set_role(self, user_id: str, role: Role, *, org_id: str | None = None) -> Member:
        """Make a member an admin, or an admin a member (admins; never the last admin)."""
        path = _member_path(await self._org(org_id), user_id)
        return (await self._client._request("PATCH", path, json={"role": role})).model(Member)

    async def remove_member(self, user_id: str, *, org_id: str | None = None) -> Member:
        """Remove someone (admins): their sessions end, their keys stop; sandboxes stay."""
        path = _member_path(await self._org(org_id), user_id)
        return (await self._client._request("DELETE", path)).model(Member)

    async def leave(self, *, org_id: str | None = None) -> Member:
        """Leave the organization: your sessions and keys in it stop working."""
        path = f"{_org_path(await self._org(org_id))}/members/me/leave"
        return (await self._client._request("POST", path)).model(Member)

    async def policy(self, org_id: str | None = None) -> OrgPolicy:
        """What the organization requires of its keys (the longest lifetime, an expiry)."""
        path = f"{_org_path(await self._org(org_id))}/policy"
        return (await self._client._request("GET", path)).model(OrgPolicy)

    async def set_policy(
        self,
        *,
        max_key_lifetime: str | _Keep | None = KEEP,
        require_key_expiry: bool | None = None,
        revoke_unused_after_days: int | _Keep | None = KEEP,
        org_id: str | None = None,
    ) -> OrgPolicy:
        """Set the key policy (admins); see ``Organizations.set_policy``."""
        path = f"{_org_path(await self._org(org_id))}/policy"
        body = _policy_body(max_key_lifetime, require_key_expiry, revoke_unused_after_days)
        return (await self._client._request("PATCH", path, json=body)).model(OrgPolicy)

    async def _org(self, org_id: str | None) -> str:
        return org_id if org_id is not None else (await self._client.me()).organization.id
