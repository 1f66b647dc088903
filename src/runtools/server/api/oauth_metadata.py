"""``/.well-known/oauth-authorization-server`` (RFC 8414) and ``openid-configuration``.

Where an OAuth client finds the device authorization, token and JWKS
endpoints of this server, and what it may send them. Both paths serve the
one document; the endpoints themselves live in ``oauth`` and ``jwks``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.guards import PUBLIC
from runtools.server.api.oauth import public_base_url
from runtools.server.api.route_table import tagged_router
from runtools.server.services.device import GRANT_TYPE

router = tagged_router("oauth-metadata", envelope=False)


class AuthorizationServerMetadata(BaseModel):
    issuer: str
    device_authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]


def _metadata(request: Request, response: Response) -> AuthorizationServerMetadata:
    base = public_base_url(request)
    response.headers["Cache-Control"] = "public, max-age=300"
    return AuthorizationServerMetadata(
        issuer=base,
        device_authorization_endpoint=f"{base}/v1/auth/device/code",
        token_endpoint=f"{base}/v1/auth/token",
        jwks_uri=f"{base}/.well-known/jwks.json",
        grant_types_supported=[GRANT_TYPE, "refresh_token"],
        # No authorization endpoint: people sign in through the device grant.
        response_types_supported=[],
        # Public clients: client_id in the form; HTTP Basic with an empty password is
        # accepted too (RFC 6749 §2.3.1), but there is no secret to authenticate with.
        token_endpoint_auth_methods_supported=["none"],
    )


@router.get("/.well-known/oauth-authorization-server", name="authorization-server")
async def authorization_server(
    request: Request, response: Response, _: Annotated[None, PUBLIC]
) -> AuthorizationServerMetadata:
    """OAuth 2.0 authorization server metadata (RFC 8414)."""
    return _metadata(request, response)


@router.get("/.well-known/openid-configuration", name="openid-configuration")
async def openid_configuration(
    request: Request, response: Response, _: Annotated[None, PUBLIC]
) -> AuthorizationServerMetadata:
    """The same metadata at the path OpenID Connect discovery looks first."""
    return _metadata(request, response)
