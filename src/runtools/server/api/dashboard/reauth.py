"""The password asked again before a sensitive step (a wide key, a rotation).

A confirmed password leaves a mark in a cookie (``WebSessions.reauth_mark``)
good for ten minutes; the page then goes back where it was sent from, never
off the dashboard. Which steps ask for it is their pages' (``keys``).
"""

from __future__ import annotations

from typing import Annotated

from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import KEYS, FormField, Visit, page_router
from runtools.server.api.guards import PUBLIC
from runtools.server.api.pages import REAUTH_COOKIE, safe_next
from runtools.server.domain.errors import RateLimited, ServiceError

router = page_router()


def _dashboard_next(target: str) -> str:
    target = safe_next(target, KEYS)
    return target if target.startswith("/dashboard/") else KEYS


@router.get("/dashboard/confirm-password", name="dashboard-reauth-page")
async def reauth_page(request: Request, _: Annotated[None, PUBLIC], next: str = KEYS) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    return visit.page(
        "reauth.html", title="Confirm your password", nav="keys", next=_dashboard_next(next)
    )


@router.post("/dashboard/confirm-password", name="dashboard-reauth")
async def reauth(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    password: FormField = "",
    next: FormField = KEYS,
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    target = _dashboard_next(next)
    try:
        await visit.call(
            visit.runtime.sign_in.confirm_password,
            visit.principal.user_id,
            password,
            visit.context,
        )
    except ServiceError as exc:
        page = visit.page(
            "reauth.html",
            exc.status_code,
            title="Confirm your password",
            nav="keys",
            next=target,
            error=exc.message,
        )
        if isinstance(exc, RateLimited):
            page.headers.update(exc.headers())
        return page
    visit.cookies.set[REAUTH_COOKIE] = visit.runtime.web_sessions.reauth_mark(visit.session_id)
    return visit.redirect(target)
