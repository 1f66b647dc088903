"""The team: the organization's members and, for its admins, invitations and roles.

An invitation's token is shown once, as a flash, to be handed over (no mail
is sent). Who may do what is ``MemberService``'s and ``InvitationService``'s;
the gates here only ask what the API's guards ask of the same calls
(api/members.py, invitations.py). No other page lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Form
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import FormField, Gate, Visit, page_router
from runtools.server.api.guards import PUBLIC, Requirement
from runtools.server.domain.errors import NotFound, ServiceError

router = page_router()

T = TypeVar("T")

TEAM = "/dashboard/team"
ROLES = ("member", "admin")
READ_MEMBERS = Gate(
    Requirement(scope="org:read"), "Team", "team", "Seeing the team needs scope org:read."
)
MANAGE_MEMBERS = Gate(
    Requirement(scope="org:members", role="admin"),
    "Team",
    "team",
    "Managing the team is for the organization's admins.",
)


async def _team_page(
    visit: Visit,
    status: int = 200,
    error: str | None = None,
    flash: dict[str, Any] | None = None,
) -> Response:
    principal = visit.principal
    manager = MANAGE_MEMBERS.admits(principal)
    members = await visit.call(
        visit.runtime.members.list_members, principal, principal.org_id, limit=100, cursor=None
    )
    invitations = None
    if manager:
        invitations = await visit.call(
            visit.runtime.invitations.list_invitations,
            principal,
            principal.org_id,
            limit=100,
            cursor=None,
        )
    return visit.page(
        "team.html",
        status,
        title=f"Team of {principal.org_name}",
        nav="team",
        members=members.items,
        invitations=invitations.items if invitations is not None else None,
        manager=manager,
        roles=ROLES,
        error=error,
        flash=flash,
        notice=(flash or {}).get("notice"),
    )


async def _changed(visit: Visit, change: Callable[..., T], *args: Any) -> T | Response:
    """``change(principal, org, *args, context)`` on this team, or the team page saying why not."""
    try:
        return await visit.call(
            change, visit.principal, visit.principal.org_id, *args, visit.context
        )
    except ServiceError as exc:
        return await _team_page(visit, exc.status_code, exc.message)


@router.get("/dashboard/team", name="dashboard-team")
async def team_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    if not isinstance(visit := await Visit.start(request, READ_MEMBERS), Visit):
        return visit
    return await _team_page(visit, flash=await visit.take_flash())


@router.post("/dashboard/team/invitations", name="dashboard-invite")
async def invite(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    email: Annotated[str, Form(max_length=320)] = "",
    role: FormField = "member",
) -> Response:
    """Invite someone by email; the invitation's token is shown once, to hand over."""
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_MEMBERS), Visit):
        return visit
    issued = await _changed(visit, visit.runtime.invitations.create, email, role)
    if isinstance(issued, Response):
        return issued
    visit.flash(
        {
            "title": f"Invitation for {issued.email} ({issued.role})",
            "secret": issued.token,
            "message": "Hand this token to the invitee yourself (no mail is sent); they "
            "join with `runtools invite accept TOKEN`. It is not shown again.",
        }
    )
    return visit.redirect(TEAM)


@router.post(
    "/dashboard/team/invitations/{invitation_id}/revoke", name="dashboard-invitation-revoke"
)
async def revoke_invitation(
    request: Request, invitation_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_MEMBERS), Visit):
        return visit
    revoked = await _changed(visit, visit.runtime.invitations.revoke, invitation_id[:64])
    if isinstance(revoked, Response):
        return revoked
    return visit.notice(f"The invitation for {revoked.email} is revoked.", TEAM)


@router.post("/dashboard/team/members/{user_id}/role", name="dashboard-member-role")
async def change_member_role(
    request: Request,
    user_id: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    role: FormField = "",
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_MEMBERS), Visit):
        return visit
    member = await _changed(visit, visit.runtime.members.change_role, user_id[:64], role)
    if isinstance(member, Response):
        return member
    return visit.notice(f"{member.email} is now {member.role}.", TEAM)


@router.get("/dashboard/team/members/{user_id}/remove", name="dashboard-member-remove-page")
async def remove_member_page(
    request: Request, user_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    if not isinstance(visit := await Visit.start(request, MANAGE_MEMBERS), Visit):
        return visit
    principal = visit.principal
    members = await visit.call(
        visit.runtime.members.list_members, principal, principal.org_id, limit=100, cursor=None
    )
    member = next((m for m in members.items if m.user_id == user_id), None)
    if member is None:
        return visit.not_found(NotFound(f"No member {user_id[:64]!r}"))
    return visit.page(
        "member_remove.html", title=f"Remove {member.email}?", nav="team", member=member
    )


@router.post("/dashboard/team/members/{user_id}/remove", name="dashboard-member-remove")
async def remove_member(
    request: Request, user_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_MEMBERS), Visit):
        return visit
    member = await _changed(visit, visit.runtime.members.remove, user_id[:64])
    if isinstance(member, Response):
        return member
    return visit.notice(f"{member.email} is no longer a member; their keys stop working.", TEAM)
