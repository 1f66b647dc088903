"""Liveness and readiness: public, cheap, and honest about what the node depends on.

``/readyz`` is 503 while the database does not answer (nothing can be served).
It is 200 with ``status: "degraded"`` and the reasons while the node serves
with less than it was configured for: shared rate-limit counts (Redis) not
answering, so limits hold per node, or the event link down, so a revocation
on another node may take up to ``RUNTOOLS_AUTH_CACHE_DEGRADED_TTL_SECONDS``
here. A balancer that should route around a degraded node checks
``/readyz?strict=true``, which answers 503 for degraded too.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Query
from starlette.requests import Request

from runtools.server.api.context import runtime_of
from runtools.server.api.envelope import Envelope, WireModel, meta_of
from runtools.server.api.guards import PUBLIC
from runtools.server.api.route_table import tagged_router
from runtools.server.broadcast.bus import BroadcastEventBus
from runtools.server.domain.errors import ServiceUnavailable

router = tagged_router("health")

COUNTERS_DOWN = "rate-limit counters unreachable: limits hold per node"
EVENT_LINK_DOWN = "event link down: revocations on other nodes reach this one late"


class Health(WireModel):
    status: str


class Readiness(WireModel):
    status: str  # "ready" or "degraded"
    reasons: list[str]  # why it is degraded; empty when ready


@router.get("/healthz", name="live")
async def live(request: Request, _: Annotated[None, PUBLIC]) -> Envelope[Health]:
    """The process is up and serving."""
    return Envelope(data=Health(status="ok"), meta=meta_of(request))


@router.get("/readyz", name="ready")
async def ready(
    request: Request,
    _: Annotated[None, PUBLIC],
    strict: Annotated[
        bool, Query(description="Answer 503 when degraded too (for balancers).")
    ] = False,
) -> Envelope[Readiness]:
    """Ready, or degraded with the reasons; 503 while the database is unreachable."""
    runtime = runtime_of(request)
    if not await anyio.to_thread.run_sync(runtime.database.ping):
        raise ServiceUnavailable("The database is unreachable")
    reasons = []
    if await runtime.rate_limiter.shared_counts_down():
        reasons.append(COUNTERS_DOWN)
    if isinstance(runtime.bus, BroadcastEventBus) and not runtime.bus.connected:
        reasons.append(EVENT_LINK_DOWN)
    if reasons and strict:
        raise ServiceUnavailable("Degraded: " + "; ".join(reasons))
    status = "degraded" if reasons else "ready"
    return Envelope(data=Readiness(status=status, reasons=reasons), meta=meta_of(request))
