"""``/v1/organizations/{org_id}/members``: who belongs, their roles, removal and leaving.

Listing takes ``org:read``; changing a role or removing someone takes
``org:members`` and role admin; leaving takes ``*`` (the caller's own
membership, like its own keys). The service holds the rules (last admin,
no self-promotion) and makes changes take effect on the next request.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Query
from pydantic import Field
from starlette.requests import Request

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, ListEnvelope, ListMeta, RequestModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.services.members import MemberOut, MemberService

router = tagged_router("members", "/v1/organizations/{org_id}/members")

OrgId = Annotated[str, Field(min_length=1, max_length=64)]
UserId = Annotated[str, Field(min_length=1, max_length=64)]
MemberManager = Annotated[Principal, requires(scope="org:members", role="admin")]
Role = Annotated[str, Field(json_schema_extra={"enum": ["admin", "member"]})]


class ChangeRole(RequestModel):
    role: Role


def _service(request: Request) -> MemberService:
    service: MemberService = runtime_of(request).members
    return service


@router.get("", name="list")
async def list_members(
    request: Request,
    org_id: OrgId,
    principal: Annotated[Principal, requires(scope="org:read")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListEnvelope[MemberOut]:
    """The organization's members and their roles, newest first."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).list_members(principal, org_id, limit=limit, cursor=cursor)
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request), has_more=page.has_more, next_cursor=page.next_cursor
        ),
    )


@router.post("/me/leave", name="leave")
async def leave_organization(
    request: Request, org_id: OrgId, principal: Annotated[Principal, requires(scope="*")]
) -> Envelope[MemberOut]:
    """Leave the organization: your sessions in it end and your keys in it stop working."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).leave(principal, org_id, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))


@router.patch("/{user_id}", name="change-role")
async def change_role(
    request: Request, org_id: OrgId, user_id: UserId, body: ChangeRole, principal: MemberManager
) -> Envelope[MemberOut]:
    """Make a member an admin or an admin a member (admins; never the last admin)."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).change_role(
            principal, org_id, user_id, body.role, request_context(request)
        )
    )
    return Envelope(data=view, meta=meta_of(request))


@router.delete("/{user_id}", name="remove")
async def remove_member(
    request: Request, org_id: OrgId, user_id: UserId, principal: MemberManager
) -> Envelope[MemberOut]:
    """Remove someone (admins; never the last admin). Their sandboxes stay."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).remove(principal, org_id, user_id, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))
