"""Every error path ends here, as ``{"error": {"code", "message", "requestId"}}``.

Handlers for our own ``ServiceError`` tree, FastAPI's validation errors,
Starlette's HTTP errors (404 routes, 405 methods, 413 bodies) and, last,
anything unexpected: a 500 that says nothing about why.

Every 403 and 404 of ours an authenticated caller gets is audited here, in
the caller's organization, unless whatever refused it audited it already
(the guards, the invitation service): one refusal, one event.

A request is judged by its credential before anything else about it: where
an error comes before the route's guard ran (FastAPI parses a body before
it resolves dependencies; a path no route serves has no guard), the guard
runs first, so a revoked key gets its 401 (audited), an exhausted one its
429, and a good one its rate-limit headers, before the 400 or 404.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import error_body
from runtools.server.api.guards import CREDENTIAL_HEADERS, Guard, Requirement
from runtools.server.api.route_table import allowed_methods, route_guard
from runtools.server.authn.usage import RATE_LIMITED
from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.errors import OAuthError, RateLimited, ServiceError, Throttled
from runtools.server.domain.principal import API_KEY, Principal
from runtools.server.ratelimit.meters import STATE_KEY as RATE_LIMIT_HEADERS

logger = logging.getLogger("runtools.errors")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
    503: "service_unavailable",
}
_HTTP_MESSAGES = {
    404: "No such route",
    405: "Method not allowed on this route",
}
#: FastAPI's detail for a body it could not decode (bad UTF-8, nesting too deep, ...).
_UNPARSABLE_BODY = "There was an error parsing the body"
_NOT_SENT_AS_JSON = (
    "This route takes a JSON body: send it with the header Content-Type: application/json"
)
#: Refusals of an authenticated caller, audited at this boundary, by status.
_REFUSALS = {403: "authz.denied", 404: "authz.not_found"}
#: The guard of a request no route serves that carries a credential anyway.
_ANY_CREDENTIAL = Guard(Requirement())


def _response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # X-Request-Id is added by WireMiddleware, which every answer but a 500 passes.
    return JSONResponse(
        error_body(code, message, request_id_of(request)), status_code=status, headers=headers
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status_code in _REFUSALS and not exc.audited:
        _audit_refusal(request, exc)
    if isinstance(exc, Throttled):
        # Retry-After alone says when: the per-minute window's headers would not.
        request.scope["state"].pop(RATE_LIMIT_HEADERS, None)
    elif isinstance(exc, RateLimited):
        principal = request.scope["state"].get("principal")
        if isinstance(principal, Principal) and principal.credential_type == API_KEY:
            runtime_of(request).usage.refused(principal.credential_id, RATE_LIMITED)
    return _response(request, exc.status_code, exc.code, exc.message, exc.headers())


def _audit_refusal(request: Request, exc: ServiceError) -> None:
    """Put a 403 or 404 an authenticated caller got in its organization's audit log.

    Whatever refused it (a service's role rule, another tenant's id, a quota),
    the log says who asked for which route with which ids: probing for other
    organizations' objects leaves a trace even though the caller sees a 404.
    """
    principal = request.scope["state"].get("principal")
    if not isinstance(principal, Principal):
        return  # unauthenticated: the authenticator audited its own 401
    route = request.scope.get("route")
    runtime_of(request).audit.enqueue(
        AuditRecord(
            action=_REFUSALS[exc.status_code],
            outcome="failure",
            reason=exc.message,
            org_id=principal.org_id,
            actor_type=principal.credential_type,
            actor_id=principal.credential_id,
            context=request_context(request),
            details={
                "route": getattr(route, "path", None),
                "method": request.method,
                "status": exc.status_code,
                "params": {k: str(v)[:128] for k, v in request.path_params.items()},
            },
        )
    )
    exc.audited = True


async def render(request: Request, exc: ServiceError) -> JSONResponse:
    """The envelope for ``exc``, for a handler that decides to answer with an error."""
    return await _service_error(request, exc)


async def _judged_first(request: Request) -> JSONResponse | None:
    """The answer to the request's credential when its guard has not run yet, else None."""
    state = request.scope["state"]
    if "principal" in state or RATE_LIMIT_HEADERS in state:
        return None  # judged already
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        guard = route_guard(route)
    elif any(name in CREDENTIAL_HEADERS for name, _ in request.scope["headers"]):
        guard = _ANY_CREDENTIAL
    else:
        guard = None
    if guard is None:
        return None
    try:
        await guard(request)
    except ServiceError as exc:
        return await _service_error(request, exc)
    return None


async def _oauth_error(request: Request, exc: Exception) -> JSONResponse:
    """The OAuth endpoints answer in RFC 6749's shape, not the API envelope."""
    assert isinstance(exc, OAuthError)
    if (judged := await _judged_first(request)) is not None:
        return judged
    return JSONResponse(
        {"error": exc.code, "error_description": exc.message},
        status_code=exc.status_code,
        headers={**exc.headers(), "Cache-Control": "no-store"},
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if (judged := await _judged_first(request)) is not None:
        return judged
    if _json_body_sent_as_something_else(request, exc):
        return _response(request, 415, "unsupported_media_type", _NOT_SENT_AS_JSON)
    return _response(request, 400, "validation_error", describe_validation(exc))


def _json_body_sent_as_something_else(request: Request, exc: RequestValidationError) -> bool:
    """A route taking a JSON body got one without ``Content-Type: application/json``.

    FastAPI decodes a body as JSON only under a JSON content type; any other
    (or none) reaches the model as the raw bytes, which it refuses as a whole.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    if isinstance(route.body_field.field_info, params.Form):
        return False
    return any(
        tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)
        for error in exc.errors()
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code if exc.status_code >= 400 else 500
    # Not a 405: a method the path does not serve is answered as such, whoever asks.
    if status in (400, 404) and (judged := await _judged_first(request)) is not None:
        return judged
    if status == 400 and exc.detail == _UNPARSABLE_BODY:
        return _response(request, 400, "validation_error", "Malformed JSON body")
    code = _HTTP_CODES.get(status, "invalid_request" if status < 500 else "internal_error")
    message = _HTTP_MESSAGES.get(status) or (
        exc.detail if isinstance(exc.detail, str) else "Request failed"
    )
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    return _response(request, status, code, message, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled %s for request %s", type(exc).__name__, request_id_of(request), exc_info=exc
    )
    # Answered outside WireMiddleware (by Starlette's outermost layer): it names its own id.
    request_id = request_id_of(request)
    response = _response(request, 500, "internal_error", "Internal server error")
    response.headers["X-Request-Id"] = request_id
    return response


def describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence naming each bad field; never echoes values."""
    problems = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            return "Malformed JSON body"
        location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
        where = ".".join(location) or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(problems) or "Invalid request"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(OAuthError, _oauth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
