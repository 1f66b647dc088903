"""Invitations: ``/v1/organizations/{org_id}/invitations`` (admins) and accepting one.

Inviting, listing and revoking take ``org:members`` and role admin.
Accepting (``POST /v1/invitations/accept``) takes a signed-in person whose
email is the invited one; signing up through an invitation is
``POST /v1/auth/signup`` with ``invitation``.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, ListEnvelope, ListMeta, RequestModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.services.invitations import (
    InvitationOut,
    InvitationService,
    IssuedInvitationOut,
)
from runtools.server.services.organizations import OrgMembershipOut

router = tagged_router("invitations")

OrgId = Annotated[str, Field(min_length=1, max_length=64)]
InvitationId = Annotated[str, Field(min_length=1, max_length=64)]
Inviter = Annotated[Principal, requires(scope="org:members", role="admin")]
Role = Annotated[str, Field(json_schema_extra={"enum": ["admin", "member"]})]


class CreateInvitation(RequestModel):
    email: str = Field(min_length=3, max_length=320)
    role: Role = "member"


class AcceptInvitation(RequestModel):
    token: str = Field(min_length=1, max_length=200)


def _service(request: Request) -> InvitationService:
    service: InvitationService = runtime_of(request).invitations
    return service


@router.post("/v1/organizations/{org_id}/invitations", name="create", status_code=201)
async def create_invitation(
    request: Request,
    response: Response,
    org_id: OrgId,
    body: CreateInvitation,
    principal: Inviter,
) -> Envelope[IssuedInvitationOut]:
    """Invite an email address; the token is in this response only, valid 7 days, once."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).create(
            principal, org_id, body.email, body.role, request_context(request)
        )
    )
    response.headers["Cache-Control"] = "no-store"  # the token must not be cached
    return Envelope(data=view, meta=meta_of(request))


@router.get("/v1/organizations/{org_id}/invitations", name="list")
async def list_invitations(
    request: Request,
    org_id: OrgId,
    principal: Inviter,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListEnvelope[InvitationOut]:
    """The organization's invitations, newest first, with their status (never a token)."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).list_invitations(principal, org_id, limit=limit, cursor=cursor)
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request), has_more=page.has_more, next_cursor=page.next_cursor
        ),
    )


@router.delete("/v1/organizations/{org_id}/invitations/{invitation_id}", name="revoke")
async def revoke_invitation(
    request: Request, org_id: OrgId, invitation_id: InvitationId, principal: Inviter
) -> Envelope[InvitationOut]:
    """Revoke an invitation not yet accepted; its token stops working now."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).revoke(principal, org_id, invitation_id, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))


@router.post("/v1/invitations/accept", name="accept")
async def accept_invitation(
    request: Request,
    body: AcceptInvitation,
    principal: Annotated[Principal, requires(credential="session")],
) -> Envelope[OrgMembershipOut]:
    """Join the organization that invited your email address, with the role it chose."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).accept(principal, body.token, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))
