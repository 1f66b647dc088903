"""``create_app(settings)``: the ASGI application, built on demand.

Nothing is created at import time; ``create_app_from_env`` is the factory
uvicorn calls (``runtools serve``), reading settings from the environment.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from runtools._version import __version__
from runtools.server.api import (
    api_keys,
    audit_logs,
    auth,
    dashboard,
    health,
    invitations,
    jwks,
    me,
    members,
    metrics,
    oauth,
    oauth_metadata,
    organizations,
    projects,
    sandbox_exec,
    sandbox_files,
    sandboxes,
    secret_scanning,
    ssh_keys,
    templates,
    verify,
    web,
)
from runtools.server.api.errors import install_error_handlers
from runtools.server.api.forwarding import Forwarder
from runtools.server.api.guards import Requirement
from runtools.server.api.middleware import WireMiddleware
from runtools.server.api.route_table import iter_routes, operation_id, route_guard
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import HeldElsewhere
from runtools.server.runtime import Runtime, build_runtime
from runtools.server.settings import Settings
from runtools.server.ssh import SshServer


class RunToolsApp(FastAPI):
    """The API app, holding the ``Runtime`` it serves from as ``runtime``.

    A plain attribute, read by ``runtime_of(request)``: Starlette's
    ``app.state`` answers only after a failed attribute lookup (an
    ``AttributeError`` made and dropped), which cost more than authenticating
    a cached key. ``app.state.runtime`` is set as well.
    """

    def __init__(self, runtime: Runtime, **options: Any) -> None:
        super().__init__(**options)
        self.runtime = runtime
        self.state.runtime = runtime


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings, clock)

    forwarder = Forwarder(
        node=settings.sandbox_node, url=settings.advertised_node_url, secret=runtime.node_secret
    )

    ssh = (
        None
        if settings.ssh_port is None
        else SshServer(
            runtime.sandbox_ssh, host=settings.host, port=settings.ssh_port, home=settings.home
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start_background()
        await runtime.sandbox_upkeep.start()
        if runtime.node_registry is not None:
            await runtime.node_registry.start()
        if ssh is not None:
            await ssh.start()
        try:
            yield
        finally:
            if ssh is not None:
                await ssh.stop()
            if runtime.node_registry is not None:
                await runtime.node_registry.stop()
            await runtime.sandbox_upkeep.stop()
            await forwarder.close()
            runtime.close()

    app = RunToolsApp(
        runtime,
        title="RunTools API",
        version=__version__,
        description="API keys, sessions, organizations and sandboxes (self-hosted RunTools).",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    routers = (
        health,
        jwks,
        oauth_metadata,
        me,
        auth,
        verify,
        oauth,
        api_keys,
        organizations,
        members,
        invitations,
        projects,
        ssh_keys,
        audit_logs,
        secret_scanning,
        sandboxes,
        sandbox_exec,
        templates,
    )
    for module in (*routers, sandbox_files, metrics, web, dashboard):
        # The routes themselves, not the router: FastAPI matches the routes of an
        # included router through a nested lookup on every request (twice for the
        # one it selects), which cost ~10 µs a request. Prefixes, tags, responses
        # and operation ids are already on each route.
        app.router.routes.extend(module.router.routes)
    install_error_handlers(app)
    app.add_exception_handler(HeldElsewhere, forwarder.forward)
    app.add_middleware(
        WireMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        observe=runtime.metrics.observe_response,
        body_limits=[*sandbox_files.body_limits(settings), *secret_scanning.body_limits()],
        node_marks=forwarder.inbound,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The app of a server process (``runtools serve``), configured from the environment."""
    app = create_app(Settings())
    # What exists now (modules, the app, its runtime) lives as long as the process.
    # Freezing it keeps the collector's full passes from re-scanning all of it: under
    # load they stalled the event loop for ~80 ms every few seconds.
    gc.collect()
    gc.freeze()
    return app


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def _security(requirement: Requirement) -> list[dict[str, list[str]]]:
    """The schemes a guarded route accepts: a session travels only as a bearer token."""
    if requirement.credential == "session":
        return [{"BearerAuth": []}]
    if requirement.key_header is not None:
        return [{"ServiceKeyHeader": []}]
    return [{"ApiKeyHeader": []}, {"BearerAuth": []}]


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "BearerAuth": {"type": "http", "scheme": "bearer"},
        # The reverse-proxy check's own caller (its X-API-Key is the proxied caller's).
        "ServiceKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Runtools-Service-Key"},
    }
    for route in iter_routes(app):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        guard = route_guard(route)
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            if guard is not None:
                operation["x-requires"] = guard.requirement.describe()
            if guard is not None and not guard.requirement.public:
                operation["security"] = _security(guard.requirement)
    app.openapi_schema = schema
    return schema
