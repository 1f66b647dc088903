"""The route table: every route the app serves, and the guard each declares.

Every router of the API starts from ``tagged_router``, so each route's
operation id, tag and documented errors come from one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from runtools.server.api.envelope import ERROR_RESPONSES
from runtools.server.api.guards import Guard


def operation_id(route: APIRoute) -> str:
    """Stable OpenAPI operation ids, ``<tag>-<name>`` (``api-keys-create``)."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def tagged_router(
    tag: str, prefix: str = "", *, envelope: bool = True, **options: Any
) -> APIRouter:
    """A router for one part of the API, its routes tagged ``tag`` (operation ids ``<tag>-<name>``).

    With ``envelope`` (the default) every route documents the ``{"error"}``
    envelope for the statuses any route can answer with. Routers whose routes
    answer in another shape (OAuth's RFC 6749 errors, the JWKS, metrics, the
    browser pages) pass ``envelope=False``. ``options`` go to ``APIRouter``
    (``route_class``, ``include_in_schema``).
    """
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=ERROR_RESPONSES if envelope else None,
        generate_unique_id_function=operation_id,
        **options,
    )


def iter_routes(app: FastAPI) -> Iterator[BaseRoute]:
    """Every route the app serves, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.160 nests routers
    except ImportError:
        yield from app.routes
        return
    for context in iter_route_contexts(app.routes):
        yield context.original_route


def route_guard(route: APIRoute) -> Guard | None:
    """The guard a route declares, found by walking its dependency tree."""
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, Guard):
            return dependant.call
        stack.extend(dependant.dependencies)
    return None


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this request's path (for ``Allow``)."""
    methods: set[str] = set()
    for route in iter_routes(app):
        for method in getattr(route, "methods", None) or ():
            if route.matches({**scope, "method": method})[0] is Match.FULL:
                methods.add(method)
    return sorted(methods)
