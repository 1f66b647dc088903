"""``/v1/api-keys``: create, list, get, update, revoke, rotate.

Managing keys takes a credential with scope ``*``; the service decides
whose keys the caller may touch.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import Query
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
    RequestModel,
    meta_of,
)
from runtools.server.api.guards import requires
from runtools.server.api.idempotency import IdempotencyKeyHeader, idempotent
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.principal import Principal
from runtools.server.domain.scopes import CATALOG
from runtools.server.domain.wire import sent_shape
from runtools.server.services.api_keys import UNSET, ApiKeyOut, ApiKeyService, IssuedKey
from runtools.server.store.pagination import DEFAULT_LIMIT, MAX_LIMIT

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

    _check_project = field_validator("project_id")(_project_id)


class UpdateApiKey(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(default=None, max_length=64)
    project_id: str | None = None
    rate_limit: RateLimit = None

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
) -> ListEnvelope[ApiKeyOut]:
    """Your keys, newest first; ``all=true`` lists the organization's (admins)."""
    page = await anyio.to_thread.run_sync(
        lambda: _service(request).list_keys(principal, all_keys=all, limit=limit, cursor=cursor)
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


@router.patch("/{key_id}", name="update")
async def update_api_key(
    request: Request, key_id: KeyId, body: UpdateApiKey, principal: KeyManager
) -> Envelope[ApiKeyOut]:
    """Rename, re-scope (never beyond your own scopes) or re-project a key."""
    fields = body.model_fields_set
    if "name" in fields and body.name is None:
        raise InvalidRequest("name cannot be null")
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).update(
            principal,
            key_id,
            name=body.name if "name" in fields and body.name is not None else UNSET,
            scopes=body.scopes if "scopes" in fields else UNSET,
            project_id=body.project_id if "project_id" in fields else UNSET,
            context=request_context(request),
            rate_limit=body.rate_limit if "rate_limit" in fields else UNSET,
        )
    )
    return Envelope(data=view, meta=meta_of(request))


@router.delete("/{key_id}", name="revoke")
async def revoke_api_key(
    request: Request, key_id: KeyId, principal: KeyManager
) -> Envelope[ApiKeyOut]:
    """Revoke a key. Durable when this returns; the next request with it fails."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).revoke(principal, key_id, context=request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))


@router.post(
    "/{key_id}/rotate",
    name="rotate",
    status_code=201,
    response_model=CreatedEnvelope[IssuedApiKeyOut],
)
async def rotate_api_key(
    request: Request,
    key_id: KeyId,
    body: RotateApiKey,
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
