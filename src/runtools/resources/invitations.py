"""``rt.invitations``: inviting people to an organization, and accepting an invitation.

Inviting, listing and revoking take an admin of the organization (default:
the credential's own). Accepting takes a session of the invited person:
the invitation names an email address, and only that account may accept.
"""

from __future__ import annotations

from typing import Literal

from runtools._models import Invitation, IssuedInvitation, OrgMembership
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment

__all__ = ["AsyncInvitations", "Invitations"]


def _path(org_id: str) -> str:
    return f"/organizations/{path_segment(org_id, name='org_id')}/invitations"


def _invite(email: str, role: str) -> dict[str, str]:
    if not email.strip():
        raise ValueError("email must be a non-empty address")
    return {"email": email.strip(), "role": role}


def _token(token: str) -> dict[str, str]:
    if not token.strip():
        raise ValueError("token must be the invitation's token (rt_inv_…)")
    return {"token": token.strip()}


class Invitations(SyncResource):
    def create(
        self,
        email: str,
        *,
        role: Literal["admin", "member"] = "member",
        org_id: str | None = None,
    ) -> IssuedInvitation:
        """Invite ``email``; the token is in the result only (valid 7 days, once)."""
        path = _path(self._org(org_id))
        return self._client._request("POST", path, json=_invite(email, role)).model(
            IssuedInvitation
        )

    def list(
        self, *, org_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> SyncPager[Invitation]:
        """The organization's invitations with their status, newest first."""
        path = _path(self._org(org_id))

        def fetch(page_cursor: str | None) -> CursorPage[Invitation]:
            params = {"limit": limit, "cursor": page_cursor}
            return self._client._request("GET", path, params=params).page(Invitation)

        return SyncPager(fetch, cursor=cursor)

    def revoke(self, invitation_id: str, *, org_id: str | None = None) -> Invitation:
        """Revoke an invitation not yet accepted; its token stops working."""
        path = f"{_path(self._org(org_id))}/{path_segment(invitation_id, name='invitation_id')}"
        return self._client._request("DELETE", path).model(Invitation)

    def accept(self, token: str) -> OrgMembership:
        """Join the organization that invited your address (needs your signed-in session)."""
        envelope = self._client._request("POST", "/invitations/accept", json=_token(token))
        return envelope.model(OrgMembership)

    def _org(self, org_id: str | None) -> str:
        return org_id if org_id is not None else self._client.me().organization.id


class AsyncInvitations(AsyncResource):
    async def create(
        self,
        email: str,
        *,
        role: Literal["admin", "member"] = "member",
        org_id: str | None = None,
    ) -> IssuedInvitation:
        """Invite ``email``; the token is in the result only (valid 7 days, once)."""
        path = _path(await self._org(org_id))
        envelope = await self._client._request("POST", path, json=_invite(email, role))
        return envelope.model(IssuedInvitation)

    def list(
        self, *, org_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[Invitation]:
        """The organization's invitations with their status, newest first."""

        async def fetch(page_cursor: str | None) -> CursorPage[Invitation]:
            path = _path(await self._org(org_id))
            params = {"limit": limit, "cursor": page_cursor}
            return (await self._client._request("GET", path, params=params)).page(Invitation)

        return AsyncPager(fetch, cursor=cursor)

    async def revoke(self, invitation_id: str, *, org_id: str | None = None) -> Invitation:
        """Revoke an invitation not yet accepted; its token stops working."""
        segment = path_segment(invitation_id, name="invitation_id")
        path = f"{_path(await self._org(org_id))}/{segment}"
        return (await self._client._request("DELETE", path)).model(Invitation)

    async def accept(self, token: str) -> OrgMembership:
        """Join the organization that invited your address (needs your signed-in session)."""
        envelope = await self._client._request("POST", "/invitations/accept", json=_token(token))
        return envelope.model(OrgMembership)

    async def _org(self, org_id: str | None) -> str:
        return org_id if org_id is not None else (await self._client.me()).organization.id
