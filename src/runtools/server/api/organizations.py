"""``/v1/organizations``: the caller's organizations, and the one it acts for.

Listing yours takes ``org:read``; creating one takes a signed-in person
(who becomes its admin); renaming takes ``org:write`` and role admin. An
``{org_id}`` other than the credential's organization is a 404.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from pydantic import Field
from starlette.requests import Request

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, ListEnvelope, ListMeta, RequestModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.principal import Principal
from runtools.server.services.organizations import (
    UNCHANGED,
    OrganizationService,
    OrgMembershipOut,
    OrgPolicyOut,
)

router = tagged_router("organizations", "/v1/organizations")

OrgId = Annotated[str, Field(min_length=1, max_length=64)]
OrgName = Annotated[str, Field(min_length=1, max_length=100)]


class CreateOrganization(RequestModel):
    name: OrgName


class UpdateOrganization(RequestModel):
    name: OrgName


class UpdatePolicy(RequestModel):
    max_key_lifetime: str | None = Field(
        default=None,
        max_length=16,
        examples=["90d", "1y"],
        json_schema_extra={"pattern": "^[1-9][0-9]{0,5}[hdwy]$"},
        description="The longest a new or rotated key may live; null: no limit",
    )
    require_key_expiry: bool | None = Field(
        default=None, description="Every new or rotated key must have an expiry"
    )
    revoke_unused_after_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        examples=[90],
        description="Revoke keys unused for this many days (checked hourly); null: never",
    )


def _service(request: Request) -> OrganizationService:
    service: OrganizationService = runtime_of(request).organizations
    return service


@router.get("", name="list")
async def list_organizations(
    request: Request, principal: Annotated[Principal, requires(scope="org:read")]
) -> ListEnvelope[OrgMembershipOut]:
    """Every organization you belong to, with your role; ``current`` marks this credential's."""
    views = await anyio.to_thread.run_sync(lambda: _service(request).list_mine(principal))
    return ListEnvelope(
        data=views,
        meta=ListMeta(request_id=request_id_of(request), has_more=False, next_cursor=None),
    )


@router.post("", name="create", status_code=201)
async def create_organization(
    request: Request,
    body: CreateOrganization,
    principal: Annotated[Principal, requires(credential="session")],
) -> Envelope[OrgMembershipOut]:
    """Create an organization; you are its admin. Switch to it with ``/v1/auth/switch-org``."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).create(principal, body.name, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))


@router.get("/{org_id}", name="get")
async def get_organization(
    request: Request, org_id: OrgId, principal: Annotated[Principal, requires(scope="org:read")]
) -> Envelope[OrgMembershipOut]:
    """The organization this credential acts for, with your role in it."""
    view = await anyio.to_thread.run_sync(lambda: _service(request).get(principal, org_id))
    return Envelope(data=view, meta=meta_of(request))


@router.patch("/{org_id}", name="update")
async def update_organization(
    request: Request,
    org_id: OrgId,
    body: UpdateOrganization,
    principal: Annotated[Principal, requires(scope="org:write", role="admin")],
) -> Envelope[OrgMembershipOut]:
    """Rename the organization (admins); names are unique on the server."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).rename(principal, org_id, body.name, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))


@router.get("/{org_id}/policy", name="get-policy")
async def get_policy(
    request: Request, org_id: OrgId, principal: Annotated[Principal, requires(scope="org:read")]
) -> Envelope[OrgPolicyOut]:
    """What the organization requires of its keys: the longest lifetime, and expiry."""
    view = await anyio.to_thread.run_sync(lambda: _service(request).policy(principal, org_id))
    return Envelope(data=view, meta=meta_of(request))


@router.patch("/{org_id}/policy", name="update-policy")
async def update_policy(
    request: Request,
    org_id: OrgId,
    body: UpdatePolicy,
    principal: Annotated[Principal, requires(scope="org:write", role="admin")],
) -> Envelope[OrgPolicyOut]:
    """Set the key policy (admins): ``maxKeyLifetime`` (``"90d"``, or null for no limit),
    ``requireKeyExpiry`` and ``revokeUnusedAfterDays`` (null: never). Keys made or
    rotated from now on are held to the first two; the third revokes any key of the
    organization left unused that long, at the next hourly check."""
    fields = body.model_fields_set
    if "require_key_expiry" in fields and body.require_key_expiry is None:
        raise InvalidRequest("requireKeyExpiry cannot be null")
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).set_policy(
            principal,
            org_id,
            max_key_lifetime=body.max_key_lifetime if "max_key_lifetime" in fields else UNCHANGED,
            require_key_expiry=body.require_key_expiry
            if body.require_key_expiry is not None
            else UNCHANGED,
            revoke_unused_after_days=body.revoke_unused_after_days
            if "revoke_unused_after_days" in fields
            else UNCHANGED,
            context=request_context(request),
        )
    )
    return Envelope(data=view, meta=meta_of(request))
