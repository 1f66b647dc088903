"""``GET /v1/me``: who the credential is, and what it can do. Served from the cache."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Annotated

from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_id_of
from runtools.server.api.envelope import Envelope, WireModel
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.principal import Principal

router = tagged_router("me", "/v1")


class OrganizationRef(WireModel):
    id: str
    name: str


class UserRef(WireModel):
    id: str
    email: str
    display_name: str | None
    role: str


class CredentialRef(WireModel):
    type: str
    id: str
    name: str
    key_prefix: str | None
    scopes: list[str]
    expires_at: datetime | None
    is_test: bool


class Me(WireModel):
    organization: OrganizationRef
    user: UserRef
    credential: CredentialRef
    effective_scopes: list[str]


@router.get("/me", name="get", response_model=Envelope[Me])
async def get_me(request: Request, principal: Annotated[Principal, requires()]) -> Response:
    """The calling credential, its organization, its owner and its effective scopes."""
    meta = json.dumps({"requestId": request_id_of(request)}, separators=(",", ":"))
    return Response(
        b'{"data":' + me_json(principal) + b',"meta":' + meta.encode() + b"}",
        media_type="application/json",
    )


@lru_cache(maxsize=4096)
def me_json(principal: Principal) -> bytes:
    """The ``data`` of ``GET /v1/me``: a pure function of the (immutable) principal.

    Verified principals are cached, so this is too: the busiest "who am I"
    call then costs its authentication and a byte join, not a model build.
    """
    me = Me(
        organization=OrganizationRef(id=principal.org_id, name=principal.org_name),
        user=UserRef(
            id=principal.user_id,
            email=principal.user_email,
            display_name=principal.user_display_name,
            role=principal.role,
        ),
        credential=CredentialRef(
            type=principal.credential_type,
            id=principal.credential_id,
            name=principal.credential_name,
            key_prefix=principal.key_prefix,
            scopes=list(principal.scopes),
            expires_at=principal.ends_at,
            is_test=principal.is_test,
        ),
        effective_scopes=principal.effective_scopes,
    )
    return me.model_dump_json(by_alias=True).encode()
