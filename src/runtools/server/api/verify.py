"""Other services of the platform check credentials: ``/v1/auth/verify`` and ``/v1/auth/check``.

Callable only with a service credential: a key holding ``auth:verify``,
a scope no wildcard covers (``domain/scopes.py``). The reply is what
``GET /v1/me`` would answer the checked credential itself; a refusal is
its own refusal (401, always the same body; 403 naming the scope it
lacks), marked ``X-Runtools-Refused: credential``. The asking service's
call is rate limited and its refusals audited like any other; what the
checking does is ``authn/verification.py``'s.

``POST /v1/auth/verify`` takes the credential in its body. ``/v1/auth/check``
(any method, any path below it) is for a reverse proxy's subrequest (nginx
``auth_request``, Envoy ``ext_authz`` over HTTP): the proxied caller's own
``X-API-Key`` / ``Authorization`` headers are the credential checked, the
proxy's service key travels in ``X-Runtools-Service-Key`` and the scopes
the location needs in ``X-Runtools-Required-Scopes``; a 200 names the
caller in ``X-Runtools-*`` headers for the proxy to pass upstream.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated

from pydantic import Field
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, RequestModel
from runtools.server.api.guards import CREDENTIAL_HEADERS, refuse_repeated_credentials, requires
from runtools.server.api.me import Me, me_json
from runtools.server.api.route_table import tagged_router
from runtools.server.authn.verification import MAX_CREDENTIAL_LENGTH
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.key_use import BROWSER_HEADERS
from runtools.server.domain.principal import Principal
from runtools.server.domain.scopes import CATALOG

router = tagged_router("auth", "/v1/auth")

#: The scope of a service credential: named explicitly, never implied by ``*``.
VERIFY_SCOPE = "auth:verify"

#: Where a reverse proxy sends its own service key (its X-API-Key is its caller's).
SERVICE_KEY_HEADER = "x-runtools-service-key"
#: The scopes the proxied location needs, comma or space separated.
REQUIRED_SCOPES_HEADER = "x-runtools-required-scopes"
#: The methods a proxy's check may arrive with (Envoy keeps the original one).
CHECK_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

Service = Annotated[Principal, requires(scope=VERIFY_SCOPE)]
ProxyService = Annotated[Principal, requires(scope=VERIFY_SCOPE, key_header=SERVICE_KEY_HEADER)]
Scope = Annotated[str, Field(max_length=64, json_schema_extra={"enum": list(CATALOG)})]


class VerifyCredential(RequestModel):
    credential: str = Field(
        min_length=1,
        max_length=MAX_CREDENTIAL_LENGTH,
        description="The API key or access token to check, as its holder sent it",
    )
    required_scopes: list[Scope] = Field(
        default_factory=list,
        max_length=64,
        description="Scopes the credential must be able to use (a 403 names the first it lacks)",
    )


def required_scopes(scopes: list[str]) -> list[str]:
    """Catalog scopes only: an unknown one is the asking service's mistake, a 400."""
    unknown = sorted({scope for scope in scopes if scope not in CATALOG})
    if unknown:
        raise InvalidRequest(f"Unknown scope(s): {', '.join(unknown)}")
    return scopes


@router.post("/verify", name="verify", response_model=Envelope[Me])
async def verify_credential(request: Request, body: VerifyCredential, service: Service) -> Response:
    """Who a credential stands for and what it may do, for a service of the platform.

    The same reply as ``GET /v1/me`` sent with that credential; 401 or 403 as that
    credential would get them, with ``X-Runtools-Refused: credential``.
    """
    principal = await runtime_of(request).credential_check.verify(
        body.credential,
        partial(request_context, request),
        required=required_scopes(body.required_scopes),
        service_id=service.credential_id,
        route="/v1/auth/verify",
    )
    return _me_reply(request, principal, {})


def _me_reply(request: Request, principal: Principal, headers: dict[str, str]) -> Response:
    meta = json.dumps({"requestId": request_id_of(request)}, separators=(",", ":"))
    return Response(
        b'{"data":' + me_json(principal) + b',"meta":' + meta.encode() + b"}",
        media_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


def principal_headers(principal: Principal) -> dict[str, str]:
    """Who the checked caller is, for a proxy to pass upstream."""
    return {
        "X-Runtools-Org-Id": principal.org_id,
        "X-Runtools-User-Id": principal.user_id,
        "X-Runtools-Role": principal.role,
        "X-Runtools-Credential-Type": principal.credential_type,
        "X-Runtools-Credential-Id": principal.credential_id,
        "X-Runtools-Scopes": " ".join(principal.effective_scopes),
    }


#: What of the proxied request the check judges: its credential, and whether a browser sent it.
CHECKED_HEADERS = CREDENTIAL_HEADERS + tuple(name.encode() for name in BROWSER_HEADERS)


async def _check(request: Request, service: Principal) -> Response:
    raw = [(name, value) for name, value in request.scope["headers"] if name in CHECKED_HEADERS]
    refuse_repeated_credentials(raw)
    wanted = request.headers.get(REQUIRED_SCOPES_HEADER, "").replace(",", " ").split()
    principal = await runtime_of(request).credential_check.verify_headers(
        raw,
        Headers(raw=raw),
        partial(request_context, request),
        required=required_scopes(wanted),
        service_id=service.credential_id,
        route="/v1/auth/check",
    )
    return _me_reply(request, principal, principal_headers(principal))


@router.get("/check", name="check", response_model=Envelope[Me])
async def check_credential(request: Request, service: ProxyService) -> Response:
    """A reverse proxy's check of its caller (nginx ``auth_request``, Envoy ``ext_authz``).

    The caller's ``X-API-Key`` or ``Authorization`` is checked, the proxy's own key is
    ``X-Runtools-Service-Key`` (scope ``auth:verify``), and ``X-Runtools-Required-Scopes``
    lists what the location needs. A 200 carries ``X-Runtools-Org-Id``,
    ``X-Runtools-User-Id``, ``X-Runtools-Scopes`` (space separated), ``X-Runtools-Role``,
    ``X-Runtools-Credential-Type`` and ``X-Runtools-Credential-Id``.
    """
    return await _check(request, service)


# The same check under every other method and any path below it (Envoy keeps the
# original method and appends the original path to its prefix); documented once, as GET.
@router.api_route(
    "/check",
    methods=[method for method in CHECK_METHODS if method != "GET"],
    name="check-any-method",
    include_in_schema=False,
)
async def check_credential_any_method(request: Request, service: ProxyService) -> Response:
    return await _check(request, service)


@router.api_route(
    "/check/{path:path}", methods=CHECK_METHODS, name="check-path", include_in_schema=False
)
async def check_credential_at(request: Request, path: str, service: ProxyService) -> Response:
    """``/v1/auth/check`` under any path (Envoy appends the original one to its prefix)."""
    return await _check(request, service)
