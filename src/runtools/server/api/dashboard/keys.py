"""Credentials > API Keys: the table, the form that creates one, a key's page, revoke, rotate.

A new key's secret reaches the page after the redirect as a flash, so it is
shown once and a reload shows it no more. Creating a key with ``*`` or an
admin or org scope, and rotating one, ask for the password first unless it
was confirmed in the last ten minutes (``reauth``). The rules are
``ApiKeyService``'s (a member sees only their own keys; a key is never given
more than its maker holds): this module only offers the choices that fit
them. The password's confirmation itself is ``reauth``'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Query
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import KEYS, PAGE, FormField, Visit, older, page_router
from runtools.server.api.guards import PUBLIC
from runtools.server.domain.durations import parse_duration
from runtools.server.domain.errors import NotFound, ServiceError
from runtools.server.domain.key_policy import MAX_KEY_LIFETIME
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import role_permits
from runtools.server.domain.scopes import ALL, CATALOG, resource_of
from runtools.server.services.api_keys import STORE_KEY_MESSAGE

router = page_router()

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
# Days of use a key's page shows.
USAGE_DAYS = 14

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


@router.get("/dashboard/api-keys", name="dashboard-keys")
async def keys_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    view: str = "mine",
    status: str = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    flash = await visit.take_flash()
    every = view == "all" and visit.principal.is_admin
    page = await visit.call(
        visit.runtime.api_keys.list_keys,
        visit.principal,
        all_keys=every,
        limit=PAGE,
        cursor=cursor or None,
    )
    status = status if status in STATUSES else ""
    projects = await visit.call(visit.runtime.projects.list_projects, visit.principal)
    return visit.page(
        "keys.html",
        project_names={p.id: p.name for p in projects},
        title="API keys",
        nav="keys",
        keys=[k for k in page.items if not status or k.status == status],
        more=older(KEYS, page.next_cursor, view="all" if every else "", status=status),
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
    projects = await visit.call(visit.runtime.projects.list_projects, principal)
    policy = await visit.call(visit.runtime.organizations.policy, principal, principal.org_id)
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
    if not isinstance(visit := await Visit.start(request), Visit):
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
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
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
    if needs_reauth(picked) and not visit.reauthenticated():
        return visit.confirm_first("/dashboard/api-keys/new")
    try:
        issued = await visit.call(
            visit.runtime.api_keys.create,
            visit.principal,
            name=name,
            scopes=picked,
            expires_in=None if expires == "never" else expires,
            is_test=mode == "test",
            project_id=project or None,
            context=visit.context,
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
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    principal = visit.principal
    service = visit.runtime.api_keys
    try:
        key = await visit.call(service.get, principal, key_id[:64])
        usage = await visit.call(service.usage, principal, key.id, days=USAGE_DAYS)
        events = await visit.call(service.events, principal, key.id, limit=50, cursor=None)
    except NotFound as exc:
        return visit.not_found(exc)
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
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    key = await visit.found(visit.runtime.api_keys.get, visit.principal, key_id[:64])
    if isinstance(key, Response):
        return key
    return visit.page("key_revoke.html", title=f"Revoke “{key.name}”?", nav="keys", key=key)


@router.post("/dashboard/api-keys/{key_id}/revoke", name="dashboard-key-revoke")
async def revoke_key(
    request: Request, key_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    key = await visit.found(
        visit.runtime.api_keys.revoke, visit.principal, key_id[:64], context=visit.context
    )
    if isinstance(key, Response):
        return key
    return visit.notice(f"Key “{key.name}” ({key.key_prefix}…) is revoked.", KEYS)


@router.get("/dashboard/api-keys/{key_id}/rotate", name="dashboard-key-rotate-page")
async def rotate_page(request: Request, key_id: str, _: Annotated[None, PUBLIC]) -> Response:
    if not isinstance(visit := await Visit.start(request), Visit):
        return visit
    if not visit.reauthenticated():
        return visit.confirm_first(f"{KEYS}/{quote(key_id[:64])}/rotate")
    key = await visit.found(visit.runtime.api_keys.get, visit.principal, key_id[:64])
    if isinstance(key, Response):
        return key
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
    if not isinstance(visit := await Visit.posted(request, csrf), Visit):
        return visit
    if not visit.reauthenticated():
        return visit.confirm_first(f"{KEYS}/{quote(key_id[:64])}/rotate")
    try:
        issued = await visit.call(
            visit.runtime.api_keys.rotate,
            visit.principal,
            key_id[:64],
            name=None,
            expires_in=None,
            grace_period=grace if grace in dict(GRACES) else "__invalid__",
            context=visit.context,
        )
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return visit.message(exc.status_code, "Could not rotate the key", exc.message)
    old = "stops working now" if grace == "0" else f"keeps working for {dict(GRACES)[grace]}"
    visit.flash(
        {
            "title": f"Key “{issued.view.name}” rotated",
            "secret": issued.secret,
            "message": f"{STORE_KEY_MESSAGE} The old key {old}.",
        }
    )
    return visit.redirect(KEYS)
