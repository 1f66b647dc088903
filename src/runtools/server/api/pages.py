"""What every browser page shares: templates, security headers, cookies, the signed-in person.

Pages are Jinja2 templates (``api/templates``) rendered with autoescaping on
for every template, so nothing a person or a key carries can become markup;
their script and stylesheet are static files (``api/static``), so the
Content-Security-Policy allows no inline script or style. Every page is
sent with ``frame-ancestors 'none'``, ``nosniff``, ``no-referrer`` and
``no-store``.

A browser holds a session as two ``HttpOnly``, ``SameSite=Strict`` cookies
on ``Path=/`` (``Secure`` when served over HTTPS): ``rt_session``, the
session's signed reference (``services.sessions.web``; never a refresh
token), and ``rt_access``, a short-lived access token minted from it and
verified as any bearer token is.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.domain.errors import Unauthorized
from runtools.server.domain.principal import Principal

ACCESS_COOKIE = "rt_access"
SESSION_COOKIE = "rt_session"
CSRF_COOKIE = "rt_csrf"
REAUTH_COOKIE = "rt_reauth"
FLASH_COOKIE = "rt_flash"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None, never: str = "never") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else never


_templates = Environment(
    loader=PackageLoader("runtools.server.api", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["when"] = _when


def render(template: str, cookies: Cookies, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` filled with ``values``, with the security headers and cookie changes."""
    body = _templates.get_template(template).render(**values)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    cookies.apply(response)
    return response


@dataclass
class Cookies:
    """Cookie changes decided while handling a request, applied to whatever we answer."""

    secure: bool
    set: dict[str, tuple[str, int]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def apply(self, response: Response) -> Response:
        for name, (value, max_age) in self.set.items():
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                httponly=True,
                samesite="strict",
                secure=self.secure,
                path="/",
            )
        for name in self.deleted:
            if name not in self.set:
                response.delete_cookie(
                    name, path="/", httponly=True, samesite="strict", secure=self.secure
                )
        return response


def cookies_for(request: Request) -> Cookies:
    public = runtime_of(request).settings.public_url or ""
    return Cookies(secure=request.url.scheme == "https" or public.startswith("https://"))


def form_token(request: Request, cookies: Cookies) -> str:
    """The CSRF token of a form shown before signing in (double submit, in its own cookie)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
        cookies.set[CSRF_COOKIE] = (token, 12 * 3600)
    return token


def form_token_ok(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, submitted)


def keep_session(
    cookies: Cookies, request: Request, session_id: str, access: str, ttl: int
) -> None:
    runtime = runtime_of(request)
    cookies.set[SESSION_COOKIE] = (
        runtime.web_sessions.reference(session_id),
        runtime.settings.session_absolute_ttl_hours * 3600,
    )
    cookies.set[ACCESS_COOKIE] = (access, ttl)


def forget_session(cookies: Cookies) -> None:
    cookies.deleted += [ACCESS_COOKIE, SESSION_COOKIE, REAUTH_COOKIE, FLASH_COOKIE]


async def signed_in(request: Request, cookies: Cookies) -> Principal | None:
    """The person whose session this browser holds, or None (its cookies then forgotten)."""
    runtime = runtime_of(request)
    context = request_context(request)
    reference = request.cookies.get(SESSION_COOKIE, "")
    session_id = runtime.web_sessions.session_of(reference) if reference else None
    if session_id is None:
        if reference or request.cookies.get(ACCESS_COOKIE):
            forget_session(cookies)
        return None
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            principal = await runtime.authenticator.authenticate(
                {"authorization": f"Bearer {access}"}, lambda: context
            )
            if principal.credential_id == session_id:
                return principal
        except Unauthorized:
            pass
    minted = await anyio.to_thread.run_sync(lambda: runtime.web_sessions.access_token(reference))
    if minted is None:
        forget_session(cookies)
        return None
    token, ttl = minted
    try:
        principal = await runtime.authenticator.authenticate(
            {"authorization": f"Bearer {token}"}, lambda: context
        )
    except Unauthorized:
        forget_session(cookies)
        return None
    cookies.set[ACCESS_COOKIE] = (token, ttl)
    return principal


# A path on this site: one "/" then URL characters only. Browsers drop tabs and line
# breaks from a URL and read "\\" as "/", so "/\t/evil.example" would be "//evil.example".
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def safe_next(target: str, fallback: str = "/device") -> str:
    """``target`` if a path on this site (no scheme, no host, no ``//``), else ``fallback``."""
    if _LOCAL_PATH.fullmatch(target) and "\\" not in target and "//" not in target[:2]:
        return target
    return fallback
