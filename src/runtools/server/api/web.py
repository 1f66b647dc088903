"""The pages a person uses in a browser to sign in, sign out and approve a device sign-in.

Templates, headers and cookies are ``pages``'. The sign-in form carries a
CSRF token checked against its own cookie in constant time (there is no
session yet to bind it to); so do the device forms, which may follow it.
Signing in keeps the session's signed reference in a cookie, not its
refresh token; signing out revokes the session itself.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import Form
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.guards import PUBLIC, PUBLIC_RATE_LIMITED
from runtools.server.api.pages import (
    Cookies,
    cookies_for,
    forget_session,
    form_token,
    form_token_ok,
    keep_session,
    render,
    safe_next,
    signed_in,
)
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import NotFound, RateLimited, ServiceError
from runtools.server.domain.principal import Principal

router = tagged_router("web", envelope=False, include_in_schema=False)

FormField = Annotated[str, Form(max_length=1024)]
EXPIRED_FORM = "Your form expired; please try again."


def _login(
    cookies: Cookies,
    csrf: str,
    target: str,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    return render(
        "login.html",
        cookies,
        status,
        title="Sign in",
        csrf=csrf,
        next=target,
        error=error,
        notice=notice,
    )


@router.get("/login", name="login-page")
async def login_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    next: str = "/dashboard",
    signed_out: str = "",
) -> Response:
    cookies = cookies_for(request)
    notice = "You are signed out." if signed_out else None
    return _login(cookies, form_token(request, cookies), safe_next(next), notice=notice)


@router.post("/login", name="login-submit")
async def login_submit(
    request: Request,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    email: FormField = "",
    password: FormField = "",
    org: FormField = "",
    csrf: FormField = "",
    next: FormField = "/dashboard",
) -> Response:
    cookies = cookies_for(request)
    target = safe_next(next)
    if not form_token_ok(request, csrf):
        return _login(cookies, form_token(request, cookies), target, EXPIRED_FORM, 403)
    runtime = runtime_of(request)
    context = request_context(request)
    try:
        pair = await anyio.to_thread.run_sync(
            lambda: runtime.sign_in.login(email, password, org or None, "web", context)
        )
    except ServiceError as exc:
        page = _login(cookies, csrf, target, exc.message, exc.status_code)
        if isinstance(exc, RateLimited):  # a throttled sign-in says when, as the API does
            page.headers.update(exc.headers())
        return page
    keep_session(cookies, request, pair.session_id, pair.access_token, pair.expires_in)
    return cookies.apply(RedirectResponse(target, status_code=303))


@router.post("/logout", name="logout")
async def logout(request: Request, _: Annotated[None, PUBLIC], csrf: FormField = "") -> Response:
    """Sign out: the session is revoked (every token of it fails next), the cookies dropped."""
    cookies = cookies_for(request)
    principal = await signed_in(request, cookies)
    runtime = runtime_of(request)
    if principal is not None:
        if not runtime.web_sessions.csrf_ok(principal.credential_id, csrf):
            return render(
                "message.html",
                cookies,
                403,
                title="Sign out",
                message=EXPIRED_FORM,
                link={"href": "/dashboard", "text": "Back to the dashboard"},
            )
        context = request_context(request)
        await anyio.to_thread.run_sync(
            lambda: runtime.sessions.revoke(
                principal, principal.credential_id, context, reason="signed_out"
            )
        )
    forget_session(cookies)
    return cookies.apply(RedirectResponse("/login?signed_out=1", status_code=303))


def _code_page(
    cookies: Cookies, csrf: str, code: str, error: str | None = None, status: int = 200
) -> Response:
    return render(
        "device_code.html",
        cookies,
        status,
        title="Sign in a device",
        csrf=csrf,
        code=code[:16],
        error=error,
    )


@router.get("/device", name="device-page")
async def device_page(
    request: Request, _: Annotated[None, PUBLIC], user_code: str = ""
) -> Response:
    cookies = cookies_for(request)
    principal = await signed_in(request, cookies)
    if principal is None:
        back = "/device" + (f"?user_code={quote(user_code)}" if user_code else "")
        return cookies.apply(RedirectResponse(f"/login?next={quote(back)}", status_code=303))
    return _code_page(cookies, form_token(request, cookies), user_code)


def _refuse_device_form(
    request: Request, cookies: Cookies, principal: Principal | None, csrf: str, user_code: str
) -> Response | None:
    """The answer to a device form posted without a session or a valid CSRF token."""
    if principal is None:
        return cookies.apply(RedirectResponse("/login?next=/device", status_code=303))
    if not form_token_ok(request, csrf):
        return _code_page(cookies, form_token(request, cookies), user_code, EXPIRED_FORM, 403)
    return None


@router.post("/device", name="device-confirm")
async def device_confirm(
    request: Request, _: Annotated[None, PUBLIC], user_code: FormField = "", csrf: FormField = ""
) -> Response:
    cookies = cookies_for(request)
    principal = await signed_in(request, cookies)
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
        page = _code_page(cookies, csrf, user_code, exc.message, exc.status_code)
        if isinstance(exc, RateLimited):
            page.headers.update(exc.headers())
        return page
    return render(
        "device_approve.html",
        cookies,
        title="Approve this device?",
        csrf=csrf,
        principal=principal,
        pending=pending,
    )


@router.post("/device/decision", name="device-decision")
async def device_decision(
    request: Request,
    _: Annotated[None, PUBLIC],
    user_code: FormField = "",
    action: FormField = "",
    csrf: FormField = "",
) -> Response:
    cookies = cookies_for(request)
    principal = await signed_in(request, cookies)
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
        return _code_page(cookies, csrf, user_code, exc.message, exc.status_code)
    if action == "approve":
        message = "Device approved. You can return to your terminal."
        return render("message.html", cookies, title="Approved", message=message)
    return render("message.html", cookies, title="Denied", message="The device was not signed in.")
