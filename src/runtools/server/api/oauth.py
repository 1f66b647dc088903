"""OAuth 2.0 endpoints for standard clients: the device grant (RFC 8628) and refresh.

These follow the RFCs rather than the rest of the API: form-encoded
requests, snake_case JSON, and OAuth error bodies
``{"error": "authorization_pending", "error_description": …}``.

Clients are public (RFC 6749 §2.1: there are no client secrets). A client
names itself with ``client_id`` in the form, or in HTTP Basic with an empty
password (§2.3.1), which is what OAuth libraries send by default.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import unquote_plus

import anyio.to_thread
from fastapi import Form
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.envelope import refuse_nul
from runtools.server.api.errors import describe_validation
from runtools.server.api.guards import PUBLIC_RATE_LIMITED
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import OAuthError, Unauthorized
from runtools.server.services.device import GRANT_TYPE


class OAuthRoute(APIRoute):
    """A route whose malformed requests are OAuth ``invalid_request`` errors, not the envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise OAuthError("invalid_request", describe_validation(exc)) from exc

        return handle


router = tagged_router("oauth", "/v1/auth", envelope=False, route_class=OAuthRoute)


OptionalField = Annotated[str | None, Form(max_length=512), AfterValidator(refuse_nul)]


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str


OAUTH_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": OAuthErrorBody, "description": "OAuth error (RFC 6749 §5.2, RFC 8628 §3.5)"},
    401: {"model": OAuthErrorBody, "description": "invalid_client"},
    413: {"description": "Request body too large"},
    429: {"description": "Too many requests"},
    503: {"description": "Service temporarily unavailable"},
}


class DeviceAuthorizationResponse(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


_PUBLIC_CLIENTS = (
    "runtools clients are public and have no secret: send client_id alone, in the form "
    "(token_endpoint_auth_method 'none') or in HTTP Basic with an empty password"
)


def _invalid_client(description: str) -> OAuthError:
    """RFC 6749 §5.2: a 401 naming the scheme the client tried."""
    return OAuthError(
        "invalid_client",
        description,
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="runtools"'},
    )


def client_id_of(request: Request, in_form: str | None) -> str | None:
    """The client's id: from HTTP Basic (RFC 6749 §2.3.1) or the form; both must agree.

    Basic credentials are form-urlencoded ``client_id:client_secret``; a
    public client's secret is empty, and any other secret is refused as
    ``invalid_client`` saying why, never ignored.
    """
    header = request.headers.get("authorization")
    if header is None:
        return in_form
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client("Client authentication here is HTTP Basic (or none at all)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid_client("Malformed HTTP Basic credentials") from exc
    name, colon, secret = decoded.partition(":")
    client_id, secret = unquote_plus(name), unquote_plus(secret)
    if not colon or not client_id or "\x00" in client_id:
        raise _invalid_client("Malformed HTTP Basic credentials")
    if secret:
        raise _invalid_client(_PUBLIC_CLIENTS)
    if in_form is not None and in_form != client_id:
        raise OAuthError("invalid_request", "client_id in the form and in HTTP Basic differ")
    return client_id


def public_base_url(request: Request) -> str:
    configured = runtime_of(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post("/device/code", name="device-authorization", responses=OAUTH_ERRORS)
async def device_authorization(
    request: Request,
    response: Response,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    client_id: OptionalField = None,
    scope: OptionalField = None,
) -> DeviceAuthorizationResponse:
    """Start a device sign-in: show ``user_code`` and ``verification_uri`` to the person."""
    context = request_context(request)
    client = client_id_of(request, client_id) or ""
    grant = await anyio.to_thread.run_sync(
        lambda: runtime_of(request).devices.start(client, context)
    )
    base = public_base_url(request)
    _no_store(response)
    return DeviceAuthorizationResponse(
        device_code=grant.device_code,
        user_code=grant.user_code,
        verification_uri=f"{base}/device",
        verification_uri_complete=f"{base}/device?user_code={grant.user_code}",
        expires_in=grant.expires_in,
        interval=grant.interval,
    )


@router.post("/token", name="token", responses=OAUTH_ERRORS)
async def token(
    request: Request,
    response: Response,
    _: Annotated[None, PUBLIC_RATE_LIMITED],
    grant_type: OptionalField = None,
    device_code: OptionalField = None,
    client_id: OptionalField = None,
    refresh_token: OptionalField = None,
) -> TokenResponse:
    """Poll for the tokens of an approved device grant, or refresh a pair."""
    context = request_context(request)
    runtime = runtime_of(request)
    client = client_id_of(request, client_id)
    if grant_type == GRANT_TYPE:
        if not device_code or not client:
            raise OAuthError(
                "invalid_request",
                "device_code and client_id (in the form or HTTP Basic) are required",
            )
        try:
            pair = await anyio.to_thread.run_sync(
                lambda: runtime.devices.poll(device_code, client, context)
            )
        except Unauthorized as exc:  # the approver left the organization meanwhile
            raise OAuthError("access_denied", "The approval is no longer valid") from exc
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required")
        try:
            pair = await anyio.to_thread.run_sync(
                lambda: runtime.token_refresh.refresh(refresh_token, None, context)
            )
        except Unauthorized as exc:
            raise OAuthError("invalid_grant", "The refresh token is not valid") from exc
    elif not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    else:
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")
    _no_store(response)
    return TokenResponse(
        access_token=pair.access_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )
