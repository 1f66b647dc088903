"""Credentials > Sessions: this person's sessions, revoking one or all the others, and
switching organization (which ends this session and starts one in the other).

The rules are ``SessionManagement``'s; no other page lives here.
"""

from __future__ import annotations

from typing import Annotated

from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import KEYS, FormField, Visit, page_router
from runtools.server.api.guards import PUBLIC
from runtools.server.api.pages import REAUTH_COOKIE, keep_session
from runtools.server.domain.errors import ServiceError

router = page_router()

SESSIONS = "/dashboard/sessions"


@router.get("/dashboard/sessions", name="dashboard-sessions")
async def sessions_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    flash = await visit.take_flash()
    page = await visit.call(
        visit.runtime.sessions.list_sessions, visit.principal, limit=100, cursor=None
    )
    return visit.page(
        "sessions.html",
        title="Sessions",
        nav="sessions",
        sessions=page.items,
        notice=(flash or {}).get("notice"),
    )


@router.post("/dashboard/sessions/{session_id}/revoke", name="dashboard-session-revoke")
async def revoke_session(
    request: Request, session_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    revoked = await visit.found(
        visit.runtime.sessions.revoke,
        visit.principal,
        session_id[:64],
        visit.context,
        reason="revoked_by_user",
    )
    if isinstance(revoked, Response):
        return revoked
    return visit.notice("The session is revoked; that device is signed out.", SESSIONS)


@router.post("/dashboard/sessions/revoke-others", name="dashboard-sessions-revoke-others")
async def revoke_other_sessions(
    request: Request, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    ended = await visit.call(visit.runtime.sessions.revoke_others, visit.principal, visit.context)
    return visit.notice(f"Signed out everywhere else ({ended} session(s) revoked).", SESSIONS)


@router.post("/dashboard/switch-org", name="dashboard-switch-org")
async def switch_org(
    request: Request, _: Annotated[None, PUBLIC], csrf: FormField = "", org: FormField = ""
) -> Response:
    """This session ends and one in the other organization starts (as ``auth switch-org``)."""
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    try:
        pair = await visit.call(
            visit.runtime.sessions.switch_org, visit.principal, org, visit.context
        )
    except ServiceError as exc:
        return visit.message(exc.status_code, "Could not switch organization", exc.message)
    keep_session(visit.cookies, request, pair.session_id, pair.access_token, pair.expires_in)
    visit.cookies.deleted.append(REAUTH_COOKIE)
    return visit.redirect(KEYS)
