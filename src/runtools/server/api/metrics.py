"""``GET /metrics``: Prometheus exposition, off unless ``RUNTOOLS_METRICS=on``.

Off, the route answers exactly as an unknown route does (404). On with
``RUNTOOLS_METRICS_TOKEN`` set, it demands ``Authorization: Bearer <token>``
(compared in constant time) and answers anything else with the usual 401.
Left out of the OpenAPI document: it is for operators' scrapers, not API users.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import runtime_of
from runtools.server.api.guards import Guard, Requirement
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import NotFound, Unauthorized
from runtools.server.observability.metrics import CONTENT_TYPE_LATEST

router = tagged_router("metrics", envelope=False)


class MetricsGuard(Guard):
    async def __call__(self, request: Request) -> None:
        settings = runtime_of(request).settings
        if settings.metrics != "on":
            raise NotFound("No such route")
        token = settings.metrics_token
        if token is None:
            return
        sent = request.headers.getlist("authorization")  # two are refused, never one picked
        scheme, _, presented = (sent[0] if len(sent) == 1 else "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected
        ):
            raise Unauthorized()


METRICS_SCRAPER: Any = Depends(MetricsGuard(Requirement(metrics_token=True)))


@router.get("/metrics", name="scrape", include_in_schema=False)
async def scrape(request: Request, _: Annotated[None, METRICS_SCRAPER]) -> Response:
    return Response(runtime_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
