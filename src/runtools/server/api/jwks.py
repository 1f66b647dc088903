"""``/.well-known/jwks.json``: the public keys that verify our access tokens."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request

from runtools.server.api.context import runtime_of
from runtools.server.api.guards import PUBLIC
from runtools.server.api.route_table import tagged_router

router = tagged_router("jwks", envelope=False)


class JsonWebKeySet(BaseModel):
    model_config = ConfigDict(extra="allow")

    keys: list[dict[str, Any]]


@router.get("/.well-known/jwks.json", name="get")
async def jwks(request: Request, _: Annotated[None, PUBLIC]) -> JsonWebKeySet:
    """Every key that may have signed a live access token (RFC 7517)."""
    return JsonWebKeySet(**runtime_of(request).keyring.jwks())
