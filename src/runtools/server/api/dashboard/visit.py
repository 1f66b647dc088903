"""What every dashboard page shares: the signed-in visit, and the pages that say no.

``Visit.start`` (a page) and ``Visit.posted`` (a form post) find the person
from the session cookie, count the request against the session's rate limit
and, for a post, check the session's CSRF token (``WebSessions.csrf_token``);
a ``Gate`` adds what the session must hold. What is refused comes back as the
``Response`` to answer with (the redirect to sign in, a 403 or 429 page), so
a route starts ``if not isinstance(visit := await Visit.start(request), Visit)``.
A ``Visit`` renders with the security headers and its cookie changes,
redirects after a post (POST, redirect, GET), carries flashes (sealed, held
server-side, taken once) and answers with the message pages (not found,
refused, failed). No page's own content or rules live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ParamSpec, TypeVar
from urllib.parse import quote, urlencode

import anyio.to_thread
from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.guards import Requirement
from runtools.server.api.pages import (
    FLASH_COOKIE,
    REAUTH_COOKIE,
    Cookies,
    cookies_for,
    render,
    signed_in,
)
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.audit import RequestContext
from runtools.server.domain.errors import NotFound, RateLimited
from runtools.server.domain.principal import Principal
from runtools.server.runtime import Runtime
from runtools.server.services.organizations import OrgMembershipOut
from runtools.server.services.sessions.web import FLASH_FOR

P = ParamSpec("P")
T = TypeVar("T")

FormField = Annotated[str, Form(max_length=1024)]
EXPIRED_FORM = "Your form expired; please try again."
KEYS = "/dashboard/api-keys"
# Rows a table shows at once; the next ones are a link away.
PAGE = 100


def page_router() -> APIRouter:
    """A router for one family of the dashboard's pages (tagged, not in the schema)."""
    return tagged_router("dashboard", envelope=False, include_in_schema=False)


def older(path: str, cursor: str | None, **filters: str) -> str | None:
    """The link to the next page of a table, keeping its filters; None on the last page."""
    if not cursor:
        return None
    return f"{path}?" + urlencode({**{k: v for k, v in filters.items() if v}, "cursor": cursor})


@dataclass(frozen=True)
class Gate:
    """What a page asks of the session beyond signing in, and its 403 page when unmet.

    The requirement is the one the API's guard asks of the same call.
    """

    requirement: Requirement
    title: str
    nav: str
    # Blank: "This needs <what is missing>."
    message: str = ""

    def admits(self, principal: Principal) -> bool:
        return self.requirement.unmet_by(principal) is None

    def refusal(self, visit: Visit) -> Response | None:
        missing = self.requirement.unmet_by(visit.principal)
        if missing is None:
            return None
        return visit.refused(self.title, self.nav, self.message or f"This needs {missing}.")


@dataclass
class Visit:
    """A signed-in person's request: who, the cookie changes, the session's CSRF token."""

    request: Request
    principal: Principal
    cookies: Cookies
    runtime: Runtime
    csrf: str
    # The person's organizations, for the switcher.
    orgs: list[OrgMembershipOut]

    @classmethod
    async def start(cls, request: Request, gate: Gate | None = None) -> Visit | Response:
        """The signed-in visit, or the redirect to the sign-in page that comes back here."""
        cookies = cookies_for(request)
        principal = await signed_in(request, cookies)
        if principal is None:
            back = request.url.path if request.method == "GET" else KEYS
            if request.method == "GET" and request.url.query:
                back += "?" + request.url.query
            return cookies.apply(RedirectResponse(f"/login?next={quote(back)}", status_code=303))
        runtime = runtime_of(request)
        try:  # counted against the session's limit, as the API counts its calls
            await runtime.rate_limiter.admit_principal(principal, request.scope["state"])
        except RateLimited as exc:
            page = render(
                "message.html", cookies, 429, title="Slow down", message=exc.message, link=None
            )
            page.headers.update(exc.headers())
            return page
        csrf = runtime.web_sessions.csrf_token(principal.credential_id)
        orgs = await anyio.to_thread.run_sync(lambda: runtime.organizations.list_mine(principal))
        return cls(request, principal, cookies, runtime, csrf, orgs).admitted(gate)

    @classmethod
    async def posted(
        cls, request: Request, csrf: str, gate: Gate | None = None
    ) -> Visit | Response:
        """``start`` for a form post; also refused (a 403 page) without the session's CSRF token."""
        visit = await cls.start(request)
        if not isinstance(visit, Visit):
            return visit
        if not visit.runtime.web_sessions.csrf_ok(visit.session_id, csrf):
            return visit.message(403, "Form refused", EXPIRED_FORM)
        return visit.admitted(gate)

    def admitted(self, gate: Gate | None) -> Visit | Response:
        """This visit, or the 403 page if it does not pass ``gate``."""
        refusal = gate.refusal(self) if gate is not None else None
        return self if refusal is None else refusal

    @property
    def session_id(self) -> str:
        return self.principal.credential_id

    @property
    def context(self) -> RequestContext:
        """Who asked, from where, for the audit log."""
        return request_context(self.request)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread: the services it calls block."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    async def found(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | Response:
        """``call``, or the 404 page if what it looks for is not there."""
        try:
            return await self.call(fn, *args, **kwargs)
        except NotFound as exc:
            return self.not_found(exc)

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        return render(
            template,
            self.cookies,
            status,
            principal=self.principal,
            csrf=self.csrf,
            orgs=self.orgs,
            **values,
        )

    def redirect(self, target: str) -> Response:
        return self.cookies.apply(RedirectResponse(target, status_code=303))

    def flash(self, payload: dict[str, Any]) -> None:
        reference = self.runtime.web_sessions.put_flash(self.session_id, payload)
        self.cookies.set[FLASH_COOKIE] = (reference, int(FLASH_FOR.total_seconds()))

    def notice(self, text: str, target: str) -> Response:
        """The redirect after a post, to a page that says ``text`` once."""
        self.flash({"notice": text})
        return self.redirect(target)

    async def take_flash(self) -> dict[str, Any] | None:
        """What the post before left for this page (taken: a reload shows it no more)."""
        reference = self.request.cookies.get(FLASH_COOKIE)
        if not reference:
            return None
        flash = await self.call(self.runtime.web_sessions.take_flash, self.session_id, reference)
        self.cookies.deleted.append(FLASH_COOKIE)
        return flash

    def reauthenticated(self) -> bool:
        """Whether the password was confirmed in the last ten minutes."""
        mark = self.request.cookies.get(REAUTH_COOKIE, "")
        return bool(mark) and self.runtime.web_sessions.reauthenticated(self.session_id, mark)

    def confirm_first(self, then: str) -> Response:
        """The redirect to the password's confirmation, which comes back to ``then``."""
        return self.redirect(f"/dashboard/confirm-password?next={quote(then)}")

    def message(
        self,
        status: int,
        title: str,
        message: str,
        nav: str = "keys",
        link: dict[str, str] | None = None,
    ) -> Response:
        """A page that only says something, with a link back (to the API keys by default)."""
        return self.page(
            "message.html",
            status,
            title=title,
            nav=nav,
            message=message,
            link=link or {"href": KEYS, "text": "Back to API keys"},
        )

    def not_found(self, error: NotFound) -> Response:
        return self.message(404, "Not found", error.message)

    def refused(self, title: str, nav: str, message: str) -> Response:
        return self.message(403, title, message, nav)
