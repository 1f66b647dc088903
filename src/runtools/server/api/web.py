"""The pages a person uses in a browser: sign in, and approve a device sign-in.

Cookies are ``HttpOnly`` and ``SameSite=Lax`` (``Secure`` behind HTTPS); every
form carries a CSRF token checked against its cookie in constant time. A
page's own session is an ordinary access/refresh pair kept in cookies.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from html import escape
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.guards import PUBLIC, PUBLIC_RATE_LIMITED
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import NotFound, RateLimited, ServiceError, Unauthorized
from runtools.server.domain.principal import Principal
from runtools.server.runtime import Runtime
from runtools.server.services.sessions.issuing import TokenPair

router = tagged_router("web", envelope=False, include_in_schema=False)

ACCESS_COOKIE = "rt_access"
REFRESH_COOKIE = "rt_refresh"
CSRF_COOKIE = "rt_csrf"
FormField = Annotated[str, Form(max_length=1024)]


@dataclass
class _Cookies:
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
                samesite="lax",
                secure=self.secure,
                path="/",
            )
        for name in self.deleted:
            response.delete_cookie(
                name, path="/", httponly=True, samesite="lax", secure=self.secure
            )
        return response


def _cookies(request: Request) -> _Cookies:
    public = runtime_of(request).settings.public_url or ""
    return _Cookies(secure=request.url.scheme == "https" or public.startswith("https://"))


def _csrf(request: Request, cookies: _Cookies) -> str:
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
        cookies.set[CSRF_COOKIE] = (token, 12 * 3600)
    return token


def _csrf_ok(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, submitted)


def _keep_session(cookies: _Cookies, pair: TokenPair, runtime: Runtime) -> None:
    cookies.set[ACCESS_COOKIE] = (pair.access_token, pair.expires_in)
    cookies.set[REFRESH_COOKIE] = (
        pair.refresh_token,
        runtime.settings.session_idle_ttl_hours * 3600,
    )


async def _signed_in(request: Request, cookies: _Cookies) -> Principal | None:
    runtime = runtime_of(request)
    context = request_context(request)
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            return await runtime.authenticator.authenticate(
                {"authorization": f"Bearer {access}"}, lambda: context
            )
        except Unauthorized:
            pass
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    try:
        pair = await anyio.to_thread.run_sync(
            lambda: runtime.token_refresh.refresh(refresh, None, context)
        )
    except Unauthorized:
        cookies.deleted += [ACCESS_COOKIE, REFRESH_COOKIE]
        return None
    _keep_session(cookies, pair, runtime)
    return await runtime.authenticator.authenticate(
        {"authorization": f"Bearer {pair.access_token}"}, lambda: context
    )


def _safe_next(target: str) -> str:
    # Only paths on this site: no scheme, no host, no protocol-relative "//".
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/device"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · RunTools</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input,button{{font-size:1rem;padding:.5rem;margin:.25rem 0;width:100%;box-sizing:border-box}}
.error{{color:#b00020}} dt{{font-weight:600}} .row{{display:flex;gap:.5rem}}</style>
</head><body><h1>{escape(title)}</h1>{body}</body></html>""",
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
        },
    )


def _login_form(csrf: str, target: str, error: str | None = None) -> str:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    return f"""{message}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="next" value="{escape(target)}">
<label>Email<input name="email" type="email" autocomplete="username" required></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required>
</label><label>Organization (optional)<input name="org"></label>
<button type="submit">Sign in</button></form>"""


@router.get("/login", name="login-page")
async def login_page(
    request: Request, _: Annotated[None, PUBLIC], next: str = "/device"
) -> Response:
    cookies = _cookies(request)
    csrf = _csrf(request, cookies)
    return cookies.apply(_page("Sign in", _login_form(csrf, _safe_next(next))))


@router.post("/login", name="login-submit")
async def login_submit(
    request: Request,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    email: FormField = "",
    password: FormField = "",
    org: FormField = "",
    csrf: FormField = "",
    next: FormField = "/device",
) -> Response:
    cookies = _cookies(request)
    target = _safe_next(next)
    if not _csrf_ok(request, csrf):
        token = _csrf(request, cookies)
        form = _login_form(token, target, "Your form expired; please try again.")
        return cookies.apply(_page("Sign in", form, 403))
    runtime = runtime_of(request)
    context = request_context(request)
    try:
        pair = await anyio.to_thread.run_sync(
            lambda: runtime.sign_in.login(email, password, org or None, "web", context)
        )
    except (Unauthorized, RateLimited) as exc:
        form = _login_form(csrf, target, exc.message)
        page = _page("Sign in", form, exc.status_code)
        if isinstance(exc, RateLimited):  # a throttled sign-in says when, as the API does
            page.headers.update(exc.headers())
        return cookies.apply(page)
    except ServiceError as exc:
        return cookies.apply(
            _page("Sign in", _login_form(csrf, target, exc.message), exc.status_code)
        )
    _keep_session(cookies, pair, runtime)
    return cookies.apply(RedirectResponse(target, status_code=303))


def _code_form(csrf: str, code: str, error: str | None = None) -> str:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    return f"""<p>Enter the code shown in your terminal.</p>{message}
<form method="post" action="/device"><input type="hidden" name="csrf" value="{escape(csrf)}">
<input name="user_code" value="{escape(code)}" placeholder="XXXX-XXXX" autocomplete="off"
 required><button type="submit">Continue</button></form>"""


@router.get("/device", name="device-page")
async def device_page(
    request: Request, _: Annotated[None, PUBLIC], user_code: str = ""
) -> Response:
    cookies = _cookies(request)
    principal = await _signed_in(request, cookies)
    if principal is None:
        back = "/device" + (f"?user_code={quote(user_code)}" if user_code else "")
        return cookies.apply(RedirectResponse(f"/login?next={quote(back)}", status_code=303))
    csrf = _csrf(request, cookies)
    return cookies.apply(_page("Sign in a device", _code_form(csrf, user_code[:16])))


def _refuse_device_form(
    request: Request, cookies: _Cookies, principal: Principal | None, csrf: str, user_code: str
) -> Response | None:
    """The answer to a device form posted without a session or a valid CSRF token."""
    if principal is None:
        return cookies.apply(RedirectResponse("/login?next=/device", status_code=303))
    if not _csrf_ok(request, csrf):
        token = _csrf(request, cookies)
        form = _code_form(token, user_code[:16], "Your form expired; please try again.")
        return cookies.apply(_page("Sign in a device", form, 403))
    return None


@router.post("/device", name="device-confirm")
async def device_confirm(
    request: Request, _: Annotated[None, PUBLIC], user_code: FormField = "", csrf: FormField = ""
) -> Response:
    cookies = _cookies(request)
    principal = await _signed_in(request, cookies)
    refusal = _refuse_device_form(request, cookies, principal, csrf, user_code)
    if refusal is not None:
        return refusal
    assert principal is not None
    runtime = runtime_of(request)
    context = request_context(request)
    try:
        pending = await anyio.to_thread.run_sync(
            lambda: runtime.devices.describe(principal, user_code, context)
        )
    except (NotFound, RateLimited) as exc:
        form = _code_form(csrf, user_code[:16], exc.message)
        page = _page("Sign in a device", form, exc.status_code)
        if isinstance(exc, RateLimited):
            page.headers.update(exc.headers())
        return cookies.apply(page)
    body = f"""<p>A device is asking to sign in as <b>{escape(principal.user_email)}</b>
in <b>{escape(principal.org_name)}</b>.</p><dl>
<dt>Code</dt><dd>{escape(pending.user_code)}</dd>
<dt>Client</dt><dd>{escape(pending.client_id)}</dd>
<dt>From</dt><dd>{escape(pending.ip or "unknown address")}</dd>
<dt>Requested</dt><dd>{escape(pending.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))}</dd></dl>
<p>Approve only if you started this sign-in yourself.</p>
<form method="post" action="/device/decision" class="row">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="user_code" value="{escape(pending.user_code)}">
<button name="action" value="approve">Approve</button>
<button name="action" value="deny">Deny</button></form>"""
    return cookies.apply(_page("Approve this device?", body))


@router.post("/device/decision", name="device-decision")
async def device_decision(
    request: Request,
    _: Annotated[None, PUBLIC],
    user_code: FormField = "",
    action: FormField = "",
    csrf: FormField = "",
) -> Response:
    cookies = _cookies(request)
    principal = await _signed_in(request, cookies)
    refusal = _refuse_device_form(request, cookies, principal, csrf, user_code)
    if refusal is not None:
        return refusal
    assert principal is not None
    runtime = runtime_of(request)
    context = request_context(request)
    try:
        await anyio.to_thread.run_sync(
            lambda: runtime.devices.decide(principal, user_code, action, context)
        )
    except ServiceError as exc:
        form = _code_form(csrf, user_code[:16], exc.message)
        return cookies.apply(_page("Sign in a device", form, exc.status_code))
    if action == "approve":
        body = "<p>Device approved. You can return to your terminal.</p>"
        return cookies.apply(_page("Approved", body))
    return cookies.apply(_page("Denied", "<p>The device was not signed in.</p>"))
