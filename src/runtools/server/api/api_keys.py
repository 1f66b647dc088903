"""``/v1/api-keys``: create, list, get, update, revoke, rotate.

Managing keys takes a credential with scope ``*``; the service decides
whose keys the caller may touch.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import Body, Query
from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from runtools import _models as sdk
from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import (
    CreatedEnvelope,
    Envelope,
    ListEnvelope,
    ListMeta,
    Meta,
    RequestModel,
    WireModel,
    meta_of,
)
from runtools.server.api.guards import requires
from runtools.server.api.idempotency import IdempotencyKeyHeader, idempotent
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.key_use import MAX_CIDRS
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.domain.scopes import CATALOG
from runtools.server.domain.wire import sent_shape
from runtools.server.services.api_keys import (
    MAX_USAGE_DAYS,
    UNSET,
    ApiKeyOut,
    ApiKeyService,
    BlastRadiusOut,
    IssuedKey,
    KeyUsageDayOut,
    KeyUse,
)
from runtools.server.services.audit import AuditEventOut

router = tagged_router("api-keys", "/v1/api-keys")

KeyManager = Annotated[Principal, requires(scope="*")]
KeyId = Annotated[str, Field(min_length=1, max_length=64)]
Scope = Annotated[str, Field(max_length=64, json_schema_extra={"enum": list(CATALOG)})]
DURATION_PATTERN = "^[1-9][0-9]{0,5}[hdwy]$"
ExpiresIn = Annotated[
    str | None,
    Field(
        max_length=16,
        examples=["30d", "90d", "1y"],
        json_schema_extra={"pattern": DURATION_PATTERN},
    ),
]


RateLimit = Annotated[
    int | None,
    Field(ge=1, le=1_000_000, description="Requests per minute, at most the plan's; null: plan"),
]


Cidr = Annotated[str, Field(min_length=1, max_length=64, examples=["203.0.113.0/24"])]
AllowedCidrs = Annotated[
    list[Cidr] | None,
    Field(max_length=MAX_CIDRS, description="Networks the key works from; empty or null: any"),
]


@sent_shape
class IssuedApiKeyOut(sdk.IssuedApiKey):
    # A new key with its secret: the SDK's ``IssuedApiKey``, every field required.

    @classmethod
    def issued(cls, issued: IssuedKey) -> IssuedApiKeyOut:
        return cls(**dict(issued.view), key=issued.secret)


def _project_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("projectId must be a UUID or null") from exc


class CreateApiKey(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(default_factory=list, max_length=64)
    expires_in: ExpiresIn = None
    is_test: bool = False
    project_id: str | None = None
    rate_limit: RateLimit = None
    allow_browser: bool = False
    allowed_cidrs: AllowedCidrs = None
    is_canary: bool = False

    _check_project = field_validator("project_id")(_project_id)


class UpdateApiKey(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(default=None, max_length=64)
    project_id: str | None = None
    rate_limit: RateLimit = None
    allow_browser: bool | None = None
    allowed_cidrs: AllowedCidrs = None

    _check_project = field_validator("project_id")(_project_id)


class RotateApiKey(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    expires_in: ExpiresIn = None
    grace_period: str | None = Field(
        default=None,
        max_length=16,
        examples=["0", "1h", "24h"],
        json_schema_extra={"pattern": "^(0|[1-9][0-9]{0,5}[hdwy])$"},
    )


def _service(request: Request) -> ApiKeyService:
    service: ApiKeyService = runtime_of(request).api_keys
    return service


@router.post("", name="create", status_code=201, response_model=CreatedEnvelope[IssuedApiKeyOut])
async def create_api_key(
    request: Request,
    body: CreateApiKey,
    principal: KeyManager,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Mint a key. The secret is in this response and nowhere else, ever."""

    async def create() -> CreatedEnvelope[IssuedApiKeyOut]:
        issued = await anyio.to_thread.run_sync(
            lambda: _service(request).create(
                principal,
                name=body.name,
                scopes=body.scopes,
                expires_in=body.expires_in,
                is_test=body.is_test,
                project_id=body.project_id,
                context=request_context(request),
                rate_limit=body.rate_limit,
                use=KeyUse(body.allow_browser, body.allowed_cidrs, body.is_canary),
            )
        )
        return CreatedEnvelope(
            data=IssuedApiKeyOut.issued(issued), meta=meta_of(request), message=issued.message
        )

    return await idempotent(request, principal, idempotency_key, body, 201, create)


@router.get("", name="list")
async def list_api_keys(
    request: Request,
    principal: KeyManager,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    all: Annotated[bool, Query(description="Every key of the org (admins only)")] = False,
    project_id: Annotated[
        str | None,
        Query(alias="projectId", max_length=64, description="Only the keys of this project"),
    ] = None,
) -> ListEnvelope[ApiKeyOut]:
    """Your keys, newest first; ``all=true`` lists the organization's (admins)."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).list_keys(
            principal, all_keys=all, limit=limit, cursor=cursor, project_id=project_id
        )
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request),
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        ),
    )


@router.get("/{key_id}", name="get")
async def get_api_key(
    request: Request, key_id: KeyId, principal: KeyManager
) -> Envelope[ApiKeyOut]:
    view = await anyio.to_thread.run_sync(lambda: _service(request).get(principal, key_id))
    return Envelope(data=view, meta=meta_of(request))


@router.get("/{key_id}/events", name="events")
async def list_api_key_events(
    request: Request,
    key_id: KeyId,
    principal: KeyManager,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListEnvelope[AuditEventOut]:
    """The audit log about this key, newest first: for its owner as well as admins
    (created, updated, rotated, revoked with the reason, a leak report, failed uses)."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).events(principal, key_id, limit=limit, cursor=cursor)
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request),
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        ),
    )


@router.get("/{key_id}/usage", name="usage")
async def api_key_usage(
    request: Request,
    key_id: KeyId,
    principal: KeyManager,
    days: Annotated[
        int, Query(ge=1, le=MAX_USAGE_DAYS, description="Days back, today included")
    ] = 30,
) -> Envelope[list[KeyUsageDayOut]]:
    """The key's requests and refusals by day (UTC), oldest first, today last.

    Counted in memory on each node and written with ``lastUsedAt`` (every
    ``RUNTOOLS_LAST_USED_FLUSH_SECONDS``), so today's figures lag by up to that.
    """
    used = await anyio.to_thread.run_sync(
        lambda: _service(request).usage(principal, key_id, days=days)
    )
    return Envelope(data=used, meta=meta_of(request))


@router.patch("/{key_id}", name="update")
async def update_api_key(
    request: Request, key_id: KeyId, body: UpdateApiKey, principal: KeyManager
) -> Envelope[ApiKeyOut]:
    """Rename, re-scope (never beyond your own scopes), re-project a key, or change
    where it may be used from (``allowBrowser``, ``allowedCidrs``)."""
    fields = body.model_fields_set
    if "name" in fields and body.name is None:
        raise InvalidRequest("name cannot be null")
    if "allow_browser" in fields and body.allow_browser is None:
        raise InvalidRequest("allowBrowser cannot be null")
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).update(
            principal,
            key_id,
            name=body.name if "name" in fields and body.name is not None else UNSET,
            scopes=body.scopes if "scopes" in fields else UNSET,
            project_id=body.project_id if "project_id" in fields else UNSET,
            context=request_context(request),
            rate_limit=body.rate_limit if "rate_limit" in fields else UNSET,
            allow_browser=body.allow_browser
            if "allow_browser" in fields and body.allow_browser is not None
            else UNSET,
            allowed_cidrs=body.allowed_cidrs if "allowed_cidrs" in fields else UNSET,
        )
    )
    return Envelope(data=view, meta=meta_of(request))


class RevokeMeta(Meta):
    blast_radius: BlastRadiusOut = Field(
        description="What the key did in the last 30 days, from the audit log"
    )


class RevokedEnvelope(WireModel):
    data: ApiKeyOut
    meta: RevokeMeta


@router.delete("/{key_id}", name="revoke")
async def revoke_api_key(request: Request, key_id: KeyId, principal: KeyManager) -> RevokedEnvelope:
    """Revoke a key. Durable when this returns; the next request with it fails.

    ``meta.blastRadius`` tells what the key did in the last 30 days (its
    audited acts, refusals, the addresses it came from), to judge what a
    leaked key may have touched.
    """
    service = _service(request)
    queued = runtime_of(request).audit

    def revoke() -> tuple[ApiKeyOut, BlastRadiusOut]:
        view = service.revoke(principal, key_id, context=request_context(request))
        queued.flush()  # refusals are written in batches: count the latest too
        return view, service.blast_radius(principal, key_id)

    view, radius = await anyio.to_thread.run_sync(revoke)
    return RevokedEnvelope(
        data=view, meta=RevokeMeta(request_id=request_id_of(request), blast_radius=radius)
    )


@router.post(
    "/{key_id}/rotate",
    name="rotate",
    status_code=201,
    response_model=CreatedEnvelope[IssuedApiKeyOut],
)
async def rotate_api_key(
    request: Request,
    key_id: KeyId,
    body: Annotated[RotateApiKey, Body(default_factory=RotateApiKey)],
    principal: KeyManager,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Mint a successor and revoke this key, now or when ``gracePeriod`` ends."""

    async def rotate() -> CreatedEnvelope[IssuedApiKeyOut]:
        issued = await anyio.to_thread.run_sync(
            lambda: _service(request).rotate(
                principal,
                key_id,
                name=body.name,
                expires_in=body.expires_in,
                grace_period=body.grace_period,
                context=request_context(request),
            )
        )
        return CreatedEnvelope(
            data=IssuedApiKeyOut.issued(issued), meta=meta_of(request), message=issued.message
        )

    return await idempotent(request, principal, idempotency_key, body, 201, rotate)
