"""``/dashboard``: Credentials > API Keys and Sessions, as server-rendered pages.

Every action is a form post answered by a redirect (POST, redirect, GET),
so each works without JavaScript and a reload never repeats it. Each form
carries the session's CSRF token (``WebSessions.csrf_token``), checked
before anything is done. A new key's secret travels to the page after the
redirect as a flash (sealed, held server-side, taken once), so it is shown
once and a reload shows it no more. Creating a key with ``*`` or an admin
scope, and rotating one, ask for the password first unless it was confirmed
in the last ten minutes (``WebSessions.reauth_mark``).

The rules are the services' (``ApiKeyService``, ``SessionManagement``): a
member sees only their own keys; a key is never given more than its maker
holds. These routes are ``PUBLIC`` to the guard walk because they
authenticate with the session cookie themselves (``pages.signed_in``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from fastapi import File, Form, Query, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.guards import PUBLIC, Requirement
from runtools.server.api.pages import (
    FLASH_COOKIE,
    REAUTH_COOKIE,
    SECURITY_HEADERS,
    Cookies,
    cookies_for,
    keep_session,
    render,
    safe_next,
    signed_in,
)
from runtools.server.api.route_table import tagged_router
from runtools.server.api.sandbox_exec import server_sent
from runtools.server.domain.durations import parse_duration
from runtools.server.domain.errors import InvalidRequest, NotFound, RateLimited, ServiceError
from runtools.server.domain.key_policy import MAX_KEY_LIFETIME
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import role_permits
from runtools.server.domain.scopes import ALL, CATALOG, resource_of
from runtools.server.domain.ssh_keys import MAX_PUBLIC_KEY
from runtools.server.runtime import Runtime
from runtools.server.services.api_keys import STORE_KEY_MESSAGE
from runtools.server.services.organizations import OrgMembershipOut
from runtools.server.services.sandboxes.records import ExecRequest, NewSandbox, SandboxView
from runtools.server.services.sessions.web import FLASH_FOR

router = tagged_router("dashboard", envelope=False, include_in_schema=False)

FormField = Annotated[str, Form(max_length=1024)]
EXPIRED_FORM = "Your form expired; please try again."
KEYS = "/dashboard/api-keys"
# What the expiry picker offers; the default is the first.
EXPIRIES = [("90d", "90 days"), ("30d", "30 days"), ("1y", "1 year"), ("never", "Never expires")]
GRACES = [
    ("24h", "24 hours"),
    ("1h", "1 hour"),
    ("7d", "7 days"),
    ("0", "None: the old key stops working now"),
]
# The statuses the table can be filtered by.
STATUSES = ("active", "expiring", "expired", "revoked")
STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}


# What the API's guards ask of the same calls (api/members.py, invitations.py, audit_logs.py).
READ_MEMBERS = Requirement(scope="org:read")
MANAGE_MEMBERS = Requirement(scope="org:members", role="admin")
READ_AUDIT = Requirement(scope="org:read", role="admin")
ROLES = ("member", "admin")
MANAGE_PROJECTS = Requirement(scope="org:write", role="admin")
READ_SANDBOXES = Requirement(scope="sandbox:read")
CREATE_SANDBOXES = Requirement(scope="sandbox:create")
CHANGE_SANDBOXES = Requirement(scope="sandbox:write")
EXEC_IN_SANDBOXES = Requirement(scope="sandbox:exec")


# Days of use a key's page shows.
USAGE_DAYS = 14
# Rows a table shows at once; the next ones are a link away.
PAGE = 100


def _older(path: str, cursor: str | None, **filters: str) -> str | None:
    """The link to the next page of a table, keeping its filters; None on the last page."""
    if not cursor:
        return None
    return f"{path}?" + urlencode({**{k: v for k, v in filters.items() if v}, "cursor": cursor})


_DURATION = re.compile(r"[1-9][0-9]{0,5}[hdwy]")


def offered_expiries(max_lifetime: str | None, require_expiry: bool) -> list[tuple[str, str]]:
    """The expiry picker's choices under the organization's key policy, the default first.

    Nothing longer than the policy's longest lifetime (which is offered itself when
    shorter than every choice), and no "never" when keys must expire.
    """
    choices = [c for c in EXPIRIES if c[0] != "never" or not (max_lifetime or require_expiry)]
    if max_lifetime is None:
        return choices
    longest = parse_duration(max_lifetime, maximum=MAX_KEY_LIFETIME)
    fitting = [c for c in choices if parse_duration(c[0], maximum=MAX_KEY_LIFETIME) <= longest]
    return fitting or [(max_lifetime, f"{max_lifetime} (the policy's longest)")]


def needs_reauth(scopes: list[str]) -> bool:
    """Scopes for which the password is asked again: ``*``, and the admin and org scopes."""
    return any(scope == ALL or resource_of(scope) in ("admin", "org") for scope in scopes)


def grantable(principal: Principal) -> list[tuple[str, str]]:
    """The catalog's scopes this person may put on a key of their own, with what each grants."""
    return [
        (scope, text)
        for scope, text in CATALOG.items()
        if role_permits(principal.role, scope) and principal.allows(scope)
    ]


@dataclass
class Visit:
    """A signed-in person's request: who, the cookie changes, the session's CSRF token."""

    principal: Principal
    cookies: Cookies
    runtime: Runtime
    csrf: str
    # The person's organizations, for the switcher.
    orgs: list[OrgMembershipOut]

    @property
    def session_id(self) -> str:
        return self.principal.credential_id

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

    def reauthenticated(self, request: Request) -> bool:
        mark = request.cookies.get(REAUTH_COOKIE, "")
        return bool(mark) and self.runtime.web_sessions.reauthenticated(self.session_id, mark)


async def _visit(request: Request) -> Visit | Response:
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
    return Visit(principal, cookies, runtime, csrf, orgs)


async def _posted(request: Request, csrf: str) -> Visit | Response:
    """``_visit`` for a form post: also refused (403, a page saying so) without the CSRF token."""
    visit = await _visit(request)
    if isinstance(visit, Visit) and not visit.runtime.web_sessions.csrf_ok(visit.session_id, csrf):
        return visit.page(
            "message.html",
            403,
            title="Form refused",
            nav="keys",
            message=EXPIRED_FORM,
            link={"href": KEYS, "text": "Back to API keys"},
        )
    return visit


def _not_found(visit: Visit, error: NotFound) -> Response:
    return visit.page(
        "message.html",
        404,
        title="Not found",
        nav="keys",
        message=error.message,
        link={"href": KEYS, "text": "Back to API keys"},
    )


def _refused(visit: Visit, title: str, nav: str, message: str) -> Response:
    return visit.page(
        "message.html",
        403,
        title=title,
        nav=nav,
        message=message,
        link={"href": KEYS, "text": "Back to API keys"},
    )


def _confirm_first(visit: Visit, then: str) -> Response:
    return visit.redirect(f"/dashboard/confirm-password?next={quote(then)}")


@router.get("/dashboard", name="dashboard-home")
async def dashboard_home(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    return RedirectResponse(KEYS, status_code=303)


@router.get("/dashboard/static/{name}", name="dashboard-static")
async def dashboard_static(request: Request, name: str, _: Annotated[None, PUBLIC]) -> Response:
    """The dashboard's stylesheet and script (the only ones: no inline code, no CDN)."""
    if name not in STATIC:
        return Response("Not found", status_code=404, media_type="text/plain")
    body = resources.files("runtools.server.api").joinpath("static", name).read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(body, media_type=STATIC[name], headers=headers)


# -- API keys -------------------------------------------------------------------


@router.get("/dashboard/api-keys", name="dashboard-keys")
async def keys_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    view: str = "mine",
    status: str = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    flash: dict[str, Any] | None = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
    every = view == "all" and visit.principal.is_admin
    page = await anyio.to_thread.run_sync(
        lambda: visit.runtime.api_keys.list_keys(
            visit.principal, all_keys=every, limit=PAGE, cursor=cursor or None
        )
    )
    status = status if status in STATUSES else ""
    projects = await anyio.to_thread.run_sync(
        lambda: visit.runtime.projects.list_projects(visit.principal)
    )
    return visit.page(
        "keys.html",
        project_names={p.id: p.name for p in projects},
        title="API keys",
        nav="keys",
        keys=[k for k in page.items if not status or k.status == status],
        more=_older(KEYS, page.next_cursor, view="all" if every else "", status=status),
        every=every,
        status_filter=status,
        statuses=STATUSES,
        flash=flash,
        notice=(flash or {}).get("notice"),
    )


async def _new_key_page(
    visit: Visit,
    status: int = 200,
    error: str | None = None,
    chosen: dict[str, Any] | None = None,
) -> Response:
    principal = visit.principal
    projects = await anyio.to_thread.run_sync(
        lambda: visit.runtime.projects.list_projects(principal)
    )
    policy = await anyio.to_thread.run_sync(
        lambda: visit.runtime.organizations.policy(principal, principal.org_id)
    )
    expiries = offered_expiries(policy.max_key_lifetime, policy.require_key_expiry)
    if chosen is not None and chosen["expires"] not in dict(expiries):
        chosen = {**chosen, "expires": expiries[0][0]}
    return visit.page(
        "key_new.html",
        status,
        policy=policy,
        title="Create an API key",
        nav="keys",
        error=error,
        scopes=grantable(visit.principal),
        expiries=expiries,
        projects=projects,
        chosen=chosen
        or {"name": "", "scopes": [], "expires": expiries[0][0], "mode": "live", "project": ""},
    )


@router.get("/dashboard/api-keys/new", name="dashboard-key-new")
async def new_key_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    return await _new_key_page(visit)


@router.post("/dashboard/api-keys", name="dashboard-key-create")
async def create_key(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: FormField = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires: FormField = "90d",
    mode: FormField = "live",
    project: FormField = "",
) -> Response:
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    picked = sorted(set(scopes or []))[:64]
    chosen = {
        "name": name,
        "scopes": picked,
        "expires": expires,
        "mode": mode,
        "project": project,
    }
    if not picked:
        return await _new_key_page(visit, 400, "Pick at least one scope.", chosen)
    if expires not in dict(EXPIRIES) and not _DURATION.fullmatch(expires):
        return await _new_key_page(visit, 400, "Pick an expiry from the list.", chosen)
    if needs_reauth(picked) and not visit.reauthenticated(request):
        return _confirm_first(visit, "/dashboard/api-keys/new")
    context = request_context(request)
    try:
        issued = await anyio.to_thread.run_sync(
            lambda: visit.runtime.api_keys.create(
                visit.principal,
                name=name,
                scopes=picked,
                expires_in=None if expires == "never" else expires,
                is_test=mode == "test",
                project_id=project or None,
                context=context,
            )
        )
    except ServiceError as exc:
        return await _new_key_page(visit, exc.status_code, exc.message, chosen)
    visit.flash(
        {
            "title": f"Key “{issued.view.name}” created",
            "secret": issued.secret,
            "message": STORE_KEY_MESSAGE,
        }
    )
    return visit.redirect(KEYS)


@router.get("/dashboard/api-keys/{key_id}", name="dashboard-key")
async def key_page(request: Request, key_id: str, _: Annotated[None, PUBLIC]) -> Response:
    """One key: everything but its secret, its use over two weeks, and its audit events."""
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    principal = visit.principal
    service = visit.runtime.api_keys
    try:
        key = await anyio.to_thread.run_sync(lambda: service.get(principal, key_id[:64]))
        usage = await anyio.to_thread.run_sync(
            lambda: service.usage(principal, key.id, days=USAGE_DAYS)
        )
        events = await anyio.to_thread.run_sync(
            lambda: service.events(principal, key.id, limit=50, cursor=None)
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    return visit.page(
        "key.html",
        title=f"API key “{key.name}”",
        nav="keys",
        key=key,
        usage=usage,
        events=events.items,
    )


@router.get("/dashboard/api-keys/{key_id}/revoke", name="dashboard-key-revoke-page")
async def revoke_page(request: Request, key_id: str, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    try:
        key = await anyio.to_thread.run_sync(
            lambda: visit.runtime.api_keys.get(visit.principal, key_id[:64])
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    return visit.page("key_revoke.html", title=f"Revoke “{key.name}”?", nav="keys", key=key)


@router.post("/dashboard/api-keys/{key_id}/revoke", name="dashboard-key-revoke")
async def revoke_key(
    request: Request, key_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    try:
        key = await anyio.to_thread.run_sync(
            lambda: visit.runtime.api_keys.revoke(visit.principal, key_id[:64], context=context)
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    visit.flash({"notice": f"Key “{key.name}” ({key.key_prefix}…) is revoked."})
    return visit.redirect(KEYS)


@router.get("/dashboard/api-keys/{key_id}/rotate", name="dashboard-key-rotate-page")
async def rotate_page(request: Request, key_id: str, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if not visit.reauthenticated(request):
        return _confirm_first(visit, f"{KEYS}/{quote(key_id[:64])}/rotate")
    try:
        key = await anyio.to_thread.run_sync(
            lambda: visit.runtime.api_keys.get(visit.principal, key_id[:64])
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    return visit.page(
        "key_rotate.html", title=f"Rotate “{key.name}”", nav="keys", key=key, graces=GRACES
    )


@router.post("/dashboard/api-keys/{key_id}/rotate", name="dashboard-key-rotate")
async def rotate_key(
    request: Request,
    key_id: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    grace: FormField = "24h",
) -> Response:
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    if not visit.reauthenticated(request):
        return _confirm_first(visit, f"{KEYS}/{quote(key_id[:64])}/rotate")
    context = request_context(request)
    try:
        issued = await anyio.to_thread.run_sync(
            lambda: visit.runtime.api_keys.rotate(
                visit.principal,
                key_id[:64],
                name=None,
                expires_in=None,
                grace_period=grace if grace in dict(GRACES) else "__invalid__",
                context=context,
            )
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return visit.page(
            "message.html",
            exc.status_code,
            title="Could not rotate the key",
            nav="keys",
            message=exc.message,
            link={"href": KEYS, "text": "Back to API keys"},
        )
    old = "stops working now" if grace == "0" else f"keeps working for {dict(GRACES)[grace]}"
    visit.flash(
        {
            "title": f"Key “{issued.view.name}” rotated",
            "secret": issued.secret,
            "message": f"{STORE_KEY_MESSAGE} The old key {old}.",
        }
    )
    return visit.redirect(KEYS)


# -- re-authentication ----------------------------------------------------------


def _dashboard_next(target: str) -> str:
    target = safe_next(target, KEYS)
    return target if target.startswith("/dashboard/") else KEYS


@router.get("/dashboard/confirm-password", name="dashboard-reauth-page")
async def reauth_page(request: Request, _: Annotated[None, PUBLIC], next: str = KEYS) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
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
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    target = _dashboard_next(next)
    context = request_context(request)
    try:
        await anyio.to_thread.run_sync(
            lambda: visit.runtime.sign_in.confirm_password(
                visit.principal.user_id, password, context
            )
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


# -- sessions -------------------------------------------------------------------


@router.get("/dashboard/sessions", name="dashboard-sessions")
async def sessions_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    flash: dict[str, Any] | None = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
    page = await anyio.to_thread.run_sync(
        lambda: visit.runtime.sessions.list_sessions(visit.principal, limit=100, cursor=None)
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
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    try:
        await anyio.to_thread.run_sync(
            lambda: visit.runtime.sessions.revoke(
                visit.principal, session_id[:64], context, reason="revoked_by_user"
            )
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    visit.flash({"notice": "The session is revoked; that device is signed out."})
    return visit.redirect("/dashboard/sessions")


@router.post("/dashboard/sessions/revoke-others", name="dashboard-sessions-revoke-others")
async def revoke_other_sessions(
    request: Request, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    ended = await anyio.to_thread.run_sync(
        lambda: visit.runtime.sessions.revoke_others(visit.principal, context)
    )
    visit.flash({"notice": f"Signed out everywhere else ({ended} session(s) revoked)."})
    return visit.redirect("/dashboard/sessions")


# -- organizations --------------------------------------------------------------


@router.post("/dashboard/switch-org", name="dashboard-switch-org")
async def switch_org(
    request: Request, _: Annotated[None, PUBLIC], csrf: FormField = "", org: FormField = ""
) -> Response:
    """This session ends and one in the other organization starts (as ``auth switch-org``)."""
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    try:
        pair = await anyio.to_thread.run_sync(
            lambda: visit.runtime.sessions.switch_org(visit.principal, org, context)
        )
    except ServiceError as exc:
        return visit.page(
            "message.html",
            exc.status_code,
            title="Could not switch organization",
            nav="keys",
            message=exc.message,
            link={"href": KEYS, "text": "Back to API keys"},
        )
    keep_session(visit.cookies, request, pair.session_id, pair.access_token, pair.expires_in)
    visit.cookies.deleted.append(REAUTH_COOKIE)
    return visit.redirect(KEYS)


# -- SSH keys -------------------------------------------------------------------

SSH = "/dashboard/ssh-keys"


async def _ssh_page(
    visit: Visit, status: int = 200, error: str | None = None, notice: str | None = None
) -> Response:
    page = await anyio.to_thread.run_sync(
        lambda: visit.runtime.ssh_keys.list_keys(
            visit.principal, all_keys=False, limit=100, cursor=None
        )
    )
    return visit.page(
        "ssh_keys.html",
        status,
        title="SSH keys",
        nav="ssh",
        keys=page.items,
        error=error,
        notice=notice,
    )


@router.get("/dashboard/ssh-keys", name="dashboard-ssh-keys")
async def ssh_keys_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    flash: dict[str, Any] | None = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
    return await _ssh_page(visit, notice=(flash or {}).get("notice"))


@router.post("/dashboard/ssh-keys", name="dashboard-ssh-key-add")
async def add_ssh_key(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: FormField = "",
    public_key: Annotated[str, Form(max_length=MAX_PUBLIC_KEY)] = "",
    public_key_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a public key pasted into the form or chosen as a file (``~/.ssh/id_ed25519.pub``)."""
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    text = public_key.strip()
    if not text and public_key_file is not None and public_key_file.filename:
        raw = await public_key_file.read(MAX_PUBLIC_KEY + 1)
        if len(raw) > MAX_PUBLIC_KEY:
            return await _ssh_page(visit, 400, "That file is too large to be a public key.")
        text = raw.decode("utf-8", errors="replace").strip()
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _ssh_page(visit, 400, "Give the key a name of 1-100 characters.")
    if not text:
        return await _ssh_page(visit, 400, "Paste a public key or choose its file.")
    context = request_context(request)
    try:
        added = await anyio.to_thread.run_sync(
            lambda: visit.runtime.ssh_keys.add(
                visit.principal, name=name, public_key=text, context=context
            )
        )
    except ServiceError as exc:
        return await _ssh_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"SSH key “{added.name}” ({added.fingerprint}) is added."})
    return visit.redirect(SSH)


@router.get("/dashboard/ssh-keys/{key_id}/remove", name="dashboard-ssh-key-remove-page")
async def remove_ssh_key_page(
    request: Request, key_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    try:
        key = await anyio.to_thread.run_sync(
            lambda: visit.runtime.ssh_keys.get(visit.principal, key_id[:64])
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    return visit.page("ssh_key_remove.html", title=f"Remove “{key.name}”?", nav="ssh", key=key)


@router.post("/dashboard/ssh-keys/{key_id}/remove", name="dashboard-ssh-key-remove")
async def remove_ssh_key(
    request: Request, key_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    visit = await _posted(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    try:
        key = await anyio.to_thread.run_sync(
            lambda: visit.runtime.ssh_keys.remove(visit.principal, key_id[:64], context)
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    visit.flash({"notice": f"SSH key “{key.name}” is removed."})
    return visit.redirect(SSH)


# -- the audit log (admins) -----------------------------------------------------


def _moment(value: str) -> datetime | None:
    """A ``datetime-local`` field's value (or an ISO 8601 time), as UTC; None if blank or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get("/dashboard/audit-log", name="dashboard-audit-log")
async def audit_log_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=40)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The organization's audit log, newest first, for its admins (as ``GET /v1/audit-logs``).

    Filtered by action, by actor (a key's, session's or user's id) and by time;
    the link to older events keeps the filters.
    """
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if READ_AUDIT.unmet_by(visit.principal) is not None:
        return _refused(
            visit, "Audit log", "audit", "The audit log is for the organization's admins."
        )
    org_id = visit.principal.org_id
    page = await anyio.to_thread.run_sync(
        lambda: visit.runtime.audit_log.search(
            org_id,
            action=action or None,
            actor=actor.strip() or None,
            since=_moment(since),
            until=_moment(until),
            limit=50,
            cursor=cursor or None,
        )
    )
    filters = {"action": action, "actor": actor.strip(), "since": since, "until": until}
    more = _older("/dashboard/audit-log", page.next_cursor, **filters)
    return visit.page(
        "audit_log.html",
        title="Audit log",
        nav="audit",
        events=page.items,
        filters=filters,
        more=more,
    )


# -- the team: members and invitations -------------------------------------------

TEAM = "/dashboard/team"


async def _team_page(
    visit: Visit,
    status: int = 200,
    error: str | None = None,
    flash: dict[str, Any] | None = None,
) -> Response:
    principal = visit.principal
    manager = MANAGE_MEMBERS.unmet_by(principal) is None
    members = await anyio.to_thread.run_sync(
        lambda: visit.runtime.members.list_members(
            principal, principal.org_id, limit=100, cursor=None
        )
    )
    invitations = None
    if manager:
        invitations = await anyio.to_thread.run_sync(
            lambda: visit.runtime.invitations.list_invitations(
                principal, principal.org_id, limit=100, cursor=None
            )
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


@router.get("/dashboard/team", name="dashboard-team")
async def team_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if READ_MEMBERS.unmet_by(visit.principal) is not None:
        return _refused(visit, "Team", "team", "Seeing the team needs scope org:read.")
    flash: dict[str, Any] | None = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
    return await _team_page(visit, flash=flash)


async def _managing(request: Request, csrf: str) -> Visit | Response:
    """``_posted`` for the team's forms: also refused (403) to anyone but an admin."""
    visit = await _posted(request, csrf)
    if isinstance(visit, Visit) and MANAGE_MEMBERS.unmet_by(visit.principal) is not None:
        return _refused(
            visit, "Team", "team", "Managing the team is for the organization's admins."
        )
    return visit


@router.post("/dashboard/team/invitations", name="dashboard-invite")
async def invite(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    email: Annotated[str, Form(max_length=320)] = "",
    role: FormField = "member",
) -> Response:
    """Invite someone by email; the invitation's token is shown once, to hand over."""
    visit = await _managing(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    org_id = visit.principal.org_id
    try:
        issued = await anyio.to_thread.run_sync(
            lambda: visit.runtime.invitations.create(visit.principal, org_id, email, role, context)
        )
    except ServiceError as exc:
        return await _team_page(visit, exc.status_code, exc.message)
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
    visit = await _managing(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    org_id = visit.principal.org_id
    try:
        revoked = await anyio.to_thread.run_sync(
            lambda: visit.runtime.invitations.revoke(
                visit.principal, org_id, invitation_id[:64], context
            )
        )
    except ServiceError as exc:
        return await _team_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"The invitation for {revoked.email} is revoked."})
    return visit.redirect(TEAM)


@router.post("/dashboard/team/members/{user_id}/role", name="dashboard-member-role")
async def change_member_role(
    request: Request,
    user_id: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    role: FormField = "",
) -> Response:
    visit = await _managing(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    org_id = visit.principal.org_id
    try:
        member = await anyio.to_thread.run_sync(
            lambda: visit.runtime.members.change_role(
                visit.principal, org_id, user_id[:64], role, context
            )
        )
    except ServiceError as exc:
        return await _team_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"{member.email} is now {member.role}."})
    return visit.redirect(TEAM)


@router.get("/dashboard/team/members/{user_id}/remove", name="dashboard-member-remove-page")
async def remove_member_page(
    request: Request, user_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if MANAGE_MEMBERS.unmet_by(visit.principal) is not None:
        return _refused(
            visit, "Team", "team", "Managing the team is for the organization's admins."
        )
    principal = visit.principal
    members = await anyio.to_thread.run_sync(
        lambda: visit.runtime.members.list_members(
            principal, principal.org_id, limit=100, cursor=None
        )
    )
    member = next((m for m in members.items if m.user_id == user_id), None)
    if member is None:
        return _not_found(visit, NotFound(f"No member {user_id[:64]!r}"))
    return visit.page(
        "member_remove.html", title=f"Remove {member.email}?", nav="team", member=member
    )


@router.post("/dashboard/team/members/{user_id}/remove", name="dashboard-member-remove")
async def remove_member(
    request: Request, user_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    visit = await _managing(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    org_id = visit.principal.org_id
    try:
        member = await anyio.to_thread.run_sync(
            lambda: visit.runtime.members.remove(visit.principal, org_id, user_id[:64], context)
        )
    except ServiceError as exc:
        return await _team_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"{member.email} is no longer a member; their keys stop working."})
    return visit.redirect(TEAM)


# -- sandboxes ------------------------------------------------------------------

BOXES = "/dashboard/sandboxes"
# What a console command may take, at most (the API allows longer: use it for those).
CONSOLE_TIMEOUT_MS = 60_000


async def _checked(request: Request, csrf: str, requirement: Requirement) -> Visit | Response:
    """``_posted``, and a 403 page unless the session meets ``requirement``."""
    visit = await _posted(request, csrf)
    if isinstance(visit, Visit):
        missing = requirement.unmet_by(visit.principal)
        if missing is not None:
            return _refused(visit, "Sandboxes", "sandboxes", f"This needs {missing}.")
    return visit


def _sandbox_error(visit: Visit, exc: ServiceError, back: str = BOXES) -> Response:
    return visit.page(
        "message.html",
        exc.status_code,
        title="Sandboxes",
        nav="sandboxes",
        message=exc.message,
        link={"href": back, "text": "Back"},
    )


@router.get("/dashboard/sandboxes", name="dashboard-sandboxes")
async def sandboxes_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    cursor: Annotated[str, Query(max_length=400)] = "",
) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if READ_SANDBOXES.unmet_by(visit.principal) is not None:
        return _refused(visit, "Sandboxes", "sandboxes", "This needs scope sandbox:read.")
    page = await visit.runtime.sandboxes.list_sandboxes(
        visit.principal,
        all_sandboxes=False,
        statuses=[],
        tags=[],
        template=None,
        limit=PAGE,
        cursor=cursor or None,
    )
    notice = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
        notice = (flash or {}).get("notice")
    return visit.page(
        "sandboxes.html",
        title="Sandboxes",
        nav="sandboxes",
        sandboxes=page.items,
        more=_older(BOXES, page.next_cursor),
        default_template=NewSandbox().template,
        notice=notice,
    )


@router.post("/dashboard/sandboxes", name="dashboard-sandbox-create")
async def create_sandbox(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=64)] = "",
    template: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    visit = await _checked(request, csrf, CREATE_SANDBOXES)
    if not isinstance(visit, Visit):
        return visit
    new = NewSandbox(name=name.strip() or None, template=template.strip() or NewSandbox().template)
    try:
        view = await visit.runtime.sandboxes.create(
            visit.principal, new, context=request_context(request)
        )
    except ServiceError as exc:
        return _sandbox_error(visit, exc)
    return visit.redirect(f"{BOXES}/{view.id}")


async def _sandbox(visit: Visit, ref: str) -> SandboxView | Response:
    try:
        return await visit.runtime.sandboxes.get(visit.principal, ref[:64])
    except NotFound as exc:
        return _not_found(visit, exc)


@router.get("/dashboard/sandboxes/{sandbox}", name="dashboard-sandbox")
async def sandbox_page(request: Request, sandbox: str, _: Annotated[None, PUBLIC]) -> Response:
    """A sandbox: its status, pause/resume/destroy, and a console whose last run is shown."""
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if READ_SANDBOXES.unmet_by(visit.principal) is not None:
        return _refused(visit, "Sandboxes", "sandboxes", "This needs scope sandbox:read.")
    view = await _sandbox(visit, sandbox)
    if not isinstance(view, SandboxView):
        return view
    ran: dict[str, Any] | None = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        ran = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
    if ran is not None and ran.get("sandbox") != view.id:
        ran = None
    return visit.page(
        "sandbox.html",
        title=f"Sandbox {view.name or view.id}",
        nav="sandboxes",
        box=view,
        ran=ran if ran and "command" in ran else None,
        notice=(ran or {}).get("notice"),
    )


@router.post("/dashboard/sandboxes/{sandbox}/exec", name="dashboard-sandbox-exec")
async def sandbox_exec(
    request: Request,
    sandbox: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    command: Annotated[str, Form(max_length=65_536)] = "",
) -> Response:
    """Run a command (``sh -c``, in ``/workspace``); its output is shown on the next page."""
    visit = await _checked(request, csrf, EXEC_IN_SANDBOXES)
    if not isinstance(visit, Visit):
        return visit
    here = f"{BOXES}/{quote(sandbox[:64])}"
    if not command.strip() or "\x00" in command:
        return _sandbox_error(visit, InvalidRequest("Type a command to run."), here)
    try:
        result = await visit.runtime.sandbox_io.exec(
            visit.principal,
            sandbox[:64],
            ExecRequest(command=command, timeout_ms=CONSOLE_TIMEOUT_MS),
            context=request_context(request),
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return _sandbox_error(visit, exc, here)
    visit.flash(
        {
            "sandbox": sandbox[:64],
            "command": command,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exitCode": result.exit_code,
            "durationMs": result.duration_ms,
            "truncated": result.stdout_truncated or result.stderr_truncated,
            "timedOut": result.timed_out,
        }
    )
    return visit.redirect(here)


@router.post("/dashboard/sandboxes/{sandbox}/exec/stream", name="dashboard-sandbox-exec-stream")
async def sandbox_exec_stream(
    request: Request,
    sandbox: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    command: Annotated[str, Form(max_length=65_536)] = "",
) -> Response:
    """The console's command with its output as it comes (Server-Sent Events, as the
    API's ``exec/stream`` sends them), for the page's script; without it the console
    posts to ``exec``. Anything refused is answered before output, and the script
    then posts the form as a page would."""
    visit = await _checked(request, csrf, EXEC_IN_SANDBOXES)
    if not isinstance(visit, Visit):
        return visit
    if not command.strip() or "\x00" in command:
        return _sandbox_error(visit, InvalidRequest("Type a command to run."))
    try:
        events = await visit.runtime.sandbox_io.exec_stream(
            visit.principal,
            sandbox[:64],
            ExecRequest(command=command, timeout_ms=CONSOLE_TIMEOUT_MS),
            context=request_context(request),
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return _sandbox_error(visit, exc)
    response = StreamingResponse(
        server_sent(events, request_id_of(request)),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )
    visit.cookies.apply(response)
    return response


@router.post("/dashboard/sandboxes/{sandbox}/{action}", name="dashboard-sandbox-change")
async def sandbox_change(
    request: Request,
    sandbox: str,
    action: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
) -> Response:
    """Pause, resume or destroy."""
    visit = await _checked(request, csrf, CHANGE_SANDBOXES)
    if not isinstance(visit, Visit):
        return visit
    service = visit.runtime.sandboxes
    steps = {"pause": service.pause, "resume": service.resume, "destroy": service.destroy}
    step = steps.get(action)
    if step is None:
        return _not_found(visit, NotFound(f"No sandbox action {action[:20]!r}"))
    here = f"{BOXES}/{quote(sandbox[:64])}"
    try:
        view = await step(visit.principal, sandbox[:64], context=request_context(request))
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return _sandbox_error(visit, exc, here)
    visit.flash({"sandbox": view.id, "notice": f"Sandbox {view.name or view.id} is {view.status}."})
    return visit.redirect(BOXES if action == "destroy" else here)


# -- projects -------------------------------------------------------------------

PROJECTS = "/dashboard/projects"


async def _projects_page(
    visit: Visit, status: int = 200, error: str | None = None, notice: str | None = None
) -> Response:
    principal = visit.principal
    projects = await anyio.to_thread.run_sync(
        lambda: visit.runtime.projects.list_projects(principal)
    )
    return visit.page(
        "projects.html",
        status,
        title="Projects",
        nav="projects",
        projects=projects,
        manager=MANAGE_PROJECTS.unmet_by(principal) is None,
        error=error,
        notice=notice,
    )


@router.get("/dashboard/projects", name="dashboard-projects")
async def projects_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if READ_MEMBERS.unmet_by(visit.principal) is not None:
        return _refused(visit, "Projects", "projects", "Seeing projects needs scope org:read.")
    notice = None
    reference = request.cookies.get(FLASH_COOKIE)
    if reference:
        flash = await anyio.to_thread.run_sync(
            lambda: visit.runtime.web_sessions.take_flash(visit.session_id, reference)
        )
        visit.cookies.deleted.append(FLASH_COOKIE)
        notice = (flash or {}).get("notice")
    return await _projects_page(visit, notice=notice)


async def _managing_projects(request: Request, csrf: str) -> Visit | Response:
    visit = await _posted(request, csrf)
    if isinstance(visit, Visit) and MANAGE_PROJECTS.unmet_by(visit.principal) is not None:
        return _refused(visit, "Projects", "projects", "Managing projects is for admins.")
    return visit


@router.post("/dashboard/projects", name="dashboard-project-create")
async def create_project(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    visit = await _managing_projects(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _projects_page(visit, 400, "Give the project a name of 1-100 characters.")
    context = request_context(request)
    try:
        made = await anyio.to_thread.run_sync(
            lambda: visit.runtime.projects.create(
                visit.principal,
                name=name,
                color=None,
                description=description.strip() or None,
                context=context,
            )
        )
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"Project “{made.name}” is created."})
    return visit.redirect(PROJECTS)


@router.post("/dashboard/projects/{project_id}/rename", name="dashboard-project-rename")
async def rename_project(
    request: Request,
    project_id: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    visit = await _managing_projects(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _projects_page(visit, 400, "Give the project a name of 1-100 characters.")
    context = request_context(request)
    try:
        renamed = await anyio.to_thread.run_sync(
            lambda: visit.runtime.projects.update(
                visit.principal, project_id[:64], changes={"name": name}, context=context
            )
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    visit.flash({"notice": f"The project is now called “{renamed.name}”."})
    return visit.redirect(PROJECTS)


@router.get("/dashboard/projects/{project_id}/delete", name="dashboard-project-delete-page")
async def delete_project_page(
    request: Request, project_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    visit = await _visit(request)
    if not isinstance(visit, Visit):
        return visit
    if MANAGE_PROJECTS.unmet_by(visit.principal) is not None:
        return _refused(visit, "Projects", "projects", "Managing projects is for admins.")
    try:
        project = await anyio.to_thread.run_sync(
            lambda: visit.runtime.projects.get(visit.principal, project_id[:64])
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    return visit.page(
        "project_delete.html", title=f"Delete “{project.name}”?", nav="projects", project=project
    )


@router.post("/dashboard/projects/{project_id}/delete", name="dashboard-project-delete")
async def delete_project(
    request: Request, project_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    visit = await _managing_projects(request, csrf)
    if not isinstance(visit, Visit):
        return visit
    context = request_context(request)
    try:
        deleted = await anyio.to_thread.run_sync(
            lambda: visit.runtime.projects.delete(visit.principal, project_id[:64], context)
        )
    except NotFound as exc:
        return _not_found(visit, exc)
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    visit.flash(
        {
            "notice": f"Project “{deleted.name}” is deleted; "
            "its keys and sandboxes are in the default project now."
        }
    )
    return visit.redirect(PROJECTS)
