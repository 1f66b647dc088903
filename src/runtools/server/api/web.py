"""The pages a person uses in a browser to sign in, sign out and approve a device sign-in.

Templates, headers and cookies are ``pages``'. The sign-in form carries a
CSRF token checked against its own cookie in constant time (there is no
session yet to bind it to); so do the device forms, which may follow it.
Signing in keeps the session's signed reference in a cookie, not its
refresh token; signing out revokes the session itself.

With the external OIDC issuer's client configured, the sign-in page also has
"Sign in with …": a link that sends the browser to the issuer, with the
sealed sign-in in a ``SameSite=Lax`` cookie on ``/login/oidc`` (the
issuer's redirect back is a cross-site navigation, on which ``Strict``
cookies are not sent). The callback starts the same session
the password does; anything wrong lands on the sign-in page, saying what.
The session's cookies are ``Strict`` and would not be sent on a redirect
that began at the issuer, so the callback answers with a page that moves on
by itself (a same-site navigation) rather than with a redirect.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import Form, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.guards import PUBLIC, PUBLIC_RATE_LIMITED
from runtools.server.api.oauth import public_base_url
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
from runtools.server.authn.oidc_sign_in import PENDING_SECONDS, SignInRefused
from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.errors import NotFound, RateLimited, ServiceError
from runtools.server.domain.principal import Principal

router = tagged_router("web", envelope=False, include_in_schema=False)

FormField = Annotated[str, Form(max_length=1024)]
EXPIRED_FORM = "Your form expired; please try again."
# The sign-in under way at the external issuer, sealed; only the callback's path sees it.
OIDC_COOKIE = "rt_oidc"
OIDC_PATH = "/login/oidc"


def _login(
    request: Request,
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
        oidc=oidc.name if (oidc := runtime_of(request).oidc_sign_in) else None,
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
    return _login(request, cookies, form_token(request, cookies), safe_next(next), notice=notice)


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
        return _login(request, cookies, form_token(request, cookies), target, EXPIRED_FORM, 403)
    runtime = runtime_of(request)
    context = request_context(request)
    try:
        pair = await anyio.to_thread.run_sync(
            lambda: runtime.sign_in.login(email, password, org or None, "web", context)
        )
    except ServiceError as exc:
        page = _login(request, cookies, csrf, target, exc.message, exc.status_code)
        if isinstance(exc, RateLimited):  # a throttled sign-in says when, as the API does
            page.headers.update(exc.headers())
        return page
    keep_session(cookies, request, pair.session_id, pair.access_token, pair.expires_in)
    return cookies.apply(RedirectResponse(target, status_code=303))


def _oidc_callback_url(request: Request) -> str:
    return public_base_url(request) + OIDC_PATH + "/callback"


def _forget_oidc(response: Response, cookies: Cookies) -> Response:
    response.delete_cookie(
        OIDC_COOKIE, path=OIDC_PATH, httponly=True, samesite="lax", secure=cookies.secure
    )
    return response


@router.get(OIDC_PATH, name="oidc-sign-in")
async def oidc_sign_in(
    request: Request,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    next: Annotated[str, Query(max_length=1024)] = "/dashboard",
) -> Response:
    """Off to the external issuer, with a fresh state, nonce and PKCE verifier.

    A link, not a form: a form's redirect to another origin is stopped by the
    pages' ``form-action 'self'``. Starting needs no CSRF token; what it
    starts is bound to this browser by the state, so another site sending
    someone here can at most have them sign in as themselves.
    """
    cookies = cookies_for(request)
    target = safe_next(next)
    oidc = runtime_of(request).oidc_sign_in
    if oidc is None:
        message = "This server has no identity provider to sign in with."
        return _login(request, cookies, form_token(request, cookies), target, message, 404)
    callback = _oidc_callback_url(request)
    try:
        url, pending = await anyio.to_thread.run_sync(lambda: oidc.begin(callback, target))
    except SignInRefused as exc:
        return _login(request, cookies, form_token(request, cookies), target, exc.message, 503)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        pending,
        max_age=PENDING_SECONDS,
        httponly=True,
        samesite="lax",
        secure=cookies.secure,
        path=OIDC_PATH,
    )
    return cookies.apply(response)


@router.get(OIDC_PATH + "/callback", name="oidc-sign-in-callback")
async def oidc_sign_in_callback(
    request: Request,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2048)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Back from the issuer: the state checked, the code exchanged, the ID token verified."""
    cookies = cookies_for(request)
    runtime = runtime_of(request)
    oidc = runtime.oidc_sign_in
    if oidc is None:
        message = "This server has no identity provider to sign in with."
        return _login(request, cookies, form_token(request, cookies), "/dashboard", message, 404)
    context = request_context(request)
    pending = request.cookies.get(OIDC_COOKIE, "")
    callback = _oidc_callback_url(request)
    try:
        signed = await anyio.to_thread.run_sync(
            lambda: oidc.finish(pending, callback, state=state, code=code, error=error)
        )
        pair = await anyio.to_thread.run_sync(
            lambda: runtime.sign_in.start_for(signed.user_id, signed.org_id, "web", context)
        )
    except (SignInRefused, ServiceError) as exc:
        reason = exc.reason if isinstance(exc, SignInRefused) else exc.code
        runtime.audit.enqueue(
            AuditRecord(
                action="auth.sign_in_failed",
                outcome="failure",
                reason=reason,
                org_id=None,
                actor_type="user",
                actor_id=None,
                context=context,
                details={"issuer": oidc.name},
            )
        )
        token = form_token(request, cookies)
        page = _login(request, cookies, token, "/dashboard", exc.message, 400)
        return _forget_oidc(page, cookies)
    keep_session(cookies, request, pair.session_id, pair.access_token, pair.expires_in)
    page = render("signed_in.html", cookies, title="Signed in", next=signed.next)
    return _forget_oidc(page, cookies)


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
