"""``/v1/auth``: signing in and out, refreshing, sessions, switching organization.

Endpoints that hand out tokens are public (they take a password or a refresh
token instead); managing sessions takes a signed-in session, not an API key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import (
    Envelope,
    ListEnvelope,
    ListMeta,
    RequestModel,
    WireModel,
    meta_of,
)
from runtools.server.api.guards import PUBLIC_RATE_LIMITED, requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.services.sessions.issuing import TokenPair

router = tagged_router("auth", "/v1/auth")

SignedIn = Annotated[Principal, requires(credential="session")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class OrgRef(WireModel):
    id: str
    name: str


class Tokens(WireModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    session_id: str
    org: OrgRef

    @classmethod
    def of(cls, pair: TokenPair) -> Tokens:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
            session_id=pair.session_id,
            org=OrgRef(id=pair.org_id, name=pair.org_name),
        )


class Login(RequestModel):
    email: str = Field(min_length=3, max_length=320)
    password: Password
    org: str | None = Field(default=None, max_length=100)
    client_name: str = Field(default="api", min_length=1, max_length=100)


class Signup(RequestModel):
    email: str = Field(min_length=3, max_length=320)
    password: Password
    org: str | None = Field(
        default=None, min_length=1, max_length=100, description="The organization to create"
    )
    invitation: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="An invitation token: join its organization instead (open sign-up or not)",
    )
    display_name: str | None = Field(default=None, max_length=200)
    client_name: str = Field(default="api", min_length=1, max_length=100)


class Refresh(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=2048)
    org: str | None = Field(default=None, max_length=100)


class SwitchOrg(RequestModel):
    org: str = Field(min_length=1, max_length=100)


class ChangePassword(RequestModel):
    current_password: Password
    new_password: Password


class DeviceDecision(RequestModel):
    user_code: str = Field(min_length=1, max_length=16)
    action: Literal["approve", "deny"]


class SessionOut(WireModel):
    id: str
    client_name: str
    org: OrgRef
    ip: str | None
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class Revoked(WireModel):
    revoked: int


class DeviceOut(WireModel):
    user_code: str
    client_id: str
    ip: str | None
    status: str


def _no_store(response: Response) -> None:
    # Token responses must never be cached (RFC 6749 §5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post("/login", name="login")
async def login(
    request: Request, response: Response, body: Login, _: Annotated[None, PUBLIC_RATE_LIMITED]
) -> Envelope[Tokens]:
    """Sign in with email and password; ``org`` picks the organization (default: the first)."""
    context = request_context(request)
    pair = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sign_in.login(
            body.email, body.password, body.org, body.client_name, context
        )
    )
    _no_store(response)
    return Envelope(data=Tokens.of(pair), meta=meta_of(request))


@router.post("/signup", name="signup", status_code=201)
async def signup(
    request: Request, response: Response, body: Signup, _: Annotated[None, PUBLIC_RATE_LIMITED]
) -> Envelope[Tokens]:
    """Create a user and their first organization (only when sign-up is open), or
    join the organization of an invitation addressed to this email (always)."""
    context = request_context(request)
    pair = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sign_in.signup(
            body.email,
            body.password,
            body.org,
            body.display_name,
            body.client_name,
            context,
            invitation=body.invitation,
        )
    )
    _no_store(response)
    return Envelope(data=Tokens.of(pair), meta=meta_of(request))


@router.post("/refresh", name="refresh")
async def refresh(
    request: Request, response: Response, body: Refresh, _: Annotated[None, PUBLIC_RATE_LIMITED]
) -> Envelope[Tokens]:
    """Trade a refresh token (once) for a new pair. A reused token ends the session."""
    context = request_context(request)
    pair = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).token_refresh.refresh(body.refresh_token, body.org, context)
    )
    _no_store(response)
    return Envelope(data=Tokens.of(pair), meta=meta_of(request))


@router.post("/logout", name="logout")
async def logout(request: Request, principal: SignedIn) -> Envelope[Revoked]:
    """End this session: its refresh token and its access tokens stop working now."""
    context = request_context(request)
    await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.revoke(
            principal, principal.credential_id, context, reason="logout"
        )
    )
    return Envelope(data=Revoked(revoked=1), meta=meta_of(request))


@router.get("/sessions", name="list-sessions")
async def list_sessions(
    request: Request,
    principal: SignedIn,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListEnvelope[SessionOut]:
    """Your live sessions in every organization, newest first."""
    page = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.list_sessions(principal, limit=limit, cursor=cursor)
    )
    return ListEnvelope(
        data=[
            SessionOut(
                id=s.id,
                client_name=s.client_name,
                org=OrgRef(id=s.org_id, name=s.org_name),
                ip=s.ip,
                user_agent=s.user_agent,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                expires_at=s.expires_at,
                current=s.current,
            )
            for s in page.items
        ],
        meta=ListMeta(
            request_id=request_id_of(request), has_more=page.has_more, next_cursor=page.next_cursor
        ),
    )


@router.delete("/sessions/{session_id}", name="revoke-session")
async def revoke_session(
    request: Request,
    session_id: Annotated[str, Field(min_length=1, max_length=64)],
    principal: SignedIn,
) -> Envelope[Revoked]:
    """End one of your sessions (another device, or this one)."""
    context = request_context(request)
    await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.revoke(
            principal, session_id, context, reason="revoked_by_user"
        )
    )
    return Envelope(data=Revoked(revoked=1), meta=meta_of(request))


@router.delete("/sessions", name="revoke-other-sessions")
async def revoke_other_sessions(request: Request, principal: SignedIn) -> Envelope[Revoked]:
    """End every session of yours except the one making this call."""
    context = request_context(request)
    count = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.revoke_others(principal, context)
    )
    return Envelope(data=Revoked(revoked=count), meta=meta_of(request))


@router.post("/switch-org", name="switch-org")
async def switch_org(
    request: Request, response: Response, body: SwitchOrg, principal: SignedIn
) -> Envelope[Tokens]:
    """End this session and start one in another of your organizations."""
    context = request_context(request)
    pair = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.switch_org(principal, body.org, context)
    )
    _no_store(response)
    return Envelope(data=Tokens.of(pair), meta=meta_of(request))


@router.post("/password", name="change-password")
async def change_password(
    request: Request, body: ChangePassword, principal: SignedIn
) -> Envelope[Revoked]:
    """Change your password; every other session of yours ends."""
    context = request_context(request)
    count = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).sessions.change_password(
            principal, body.current_password, body.new_password, context
        )
    )
    return Envelope(data=Revoked(revoked=count), meta=meta_of(request))


@router.post("/device/verify", name="verify-device")
async def verify_device(
    request: Request, body: DeviceDecision, principal: SignedIn
) -> Envelope[DeviceOut]:
    """Approve or deny a device sign-in by its user code, for your current organization."""
    context = request_context(request)
    pending = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).devices.decide(principal, body.user_code, body.action, context)
    )
    status = "approved" if body.action == "approve" else "denied"
    return Envelope(
        data=DeviceOut(
            user_code=pending.user_code, client_id=pending.client_id, ip=pending.ip, status=status
        ),
        meta=meta_of(request),
    )
