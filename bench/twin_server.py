"""The server the HTTP benchmark loads: the real app, plus one bench-only route.

    python bench/twin_server.py --port 8321        # RUNTOOLS_* settings as for `runtools serve`

``GET /bench/me-unauthenticated`` (and ``…-after``) answers exactly what
``GET /v1/me`` answers for the benchmark's key (same handler code, same body;
one just before ``/v1/me`` in the route table, one just after) but under the
``PUBLIC`` guard: comparing them isolates what authentication and rate
limiting cost. The key is resolved once, at the first
request, from ``RUNTOOLS_BENCH_KEY``.

Plan limits are lifted in this process only, so the load generator measures
throughput instead of collecting 429s; the counting still happens.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Annotated

import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import request_id_of
from runtools.server.api.guards import PUBLIC
from runtools.server.api.me import me_json
from runtools.server.app import create_app_from_env
from runtools.server.domain.audit import RequestContext
from runtools.server.domain.principal import Principal
from runtools.server.ratelimit import policy

UNLIMITED = 1_000_000_000
MIRROR_PATH = "/bench/me-unauthenticated"
MIRROR_AFTER_PATH = "/bench/me-unauthenticated-after"


def create() -> FastAPI:
    """The app, with one twin just before ``/v1/me`` in the route table and one just after.

    Routes are matched in order, so the first twin pays one route check less than
    ``/v1/me`` and the second one more: their mean is a twin in ``/v1/me``'s place.
    """
    for plan in policy.PLANS:
        policy.PLANS[plan] = policy.PlanLimits(live=UNLIMITED, test=UNLIMITED)
    app = create_app_from_env()
    runtime = app.state.runtime
    key = os.environ["RUNTOOLS_BENCH_KEY"]
    resolved: list[Principal] = []

    async def me_unauthenticated(request: Request, _: Annotated[None, PUBLIC]) -> Response:
        if not resolved:
            resolved.append(
                await runtime.authenticator.authenticate({"x-api-key": key}, RequestContext)
            )
        meta = json.dumps({"requestId": request_id_of(request)}, separators=(",", ":"))
        return Response(
            b'{"data":' + me_json(resolved[0]) + b',"meta":' + meta.encode() + b"}",
            media_type="application/json",
        )

    def twin(path: str) -> APIRoute:
        return APIRoute(path, me_unauthenticated, methods=["GET"], include_in_schema=False)

    routes = app.router.routes
    position = next(i for i, r in enumerate(routes) if getattr(r, "path", None) == "/v1/me")
    routes.insert(position + 1, twin(MIRROR_AFTER_PATH))
    routes.insert(position, twin(MIRROR_PATH))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As `runtools serve` runs it, minus logging: no per-request line skews the comparison.
    uvicorn.run(
        "twin_server:create",
        factory=True,
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
