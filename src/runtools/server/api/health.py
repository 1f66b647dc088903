"""Liveness and readiness: public, cheap, and honest about the database."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from starlette.requests import Request

from runtools.server.api.context import runtime_of
from runtools.server.api.envelope import Envelope, WireModel, meta_of
from runtools.server.api.guards import PUBLIC
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import ServiceUnavailable

router = tagged_router("health")


class Health(WireModel):
    status: str


@router.get("/healthz", name="live")
async def live(request: Request, _: Annotated[None, PUBLIC]) -> Envelope[Health]:
    """The process is up and serving."""
    return Envelope(data=Health(status="ok"), meta=meta_of(request))


@router.get("/readyz", name="ready")
async def ready(request: Request, _: Annotated[None, PUBLIC]) -> Envelope[Health]:
    """The database answers; 503 otherwise."""
    if not await anyio.to_thread.run_sync(runtime_of(request).database.ping):
        raise ServiceUnavailable("The database is unreachable")
    return Envelope(data=Health(status="ready"), meta=meta_of(request))
