"""``Idempotency-Key`` on create routes: the HTTP side of ``services.idempotency``.

A create route declares the header with :data:`IdempotencyKeyHeader` and
hands its work to :func:`idempotent`, which runs it at most once per key
and replays the first answer (status and body, marked
``Idempotent-Replayed: true``) to retries::

    @router.post("", status_code=201, response_model=CreatedEnvelope[ThingOut])
    async def create_thing(request, body, principal, idempotency_key: IdempotencyKeyHeader):
        return await idempotent(request, principal, idempotency_key, body, 201, make)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Header
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.context import runtime_of
from runtools.server.domain.principal import Principal
from runtools.server.services.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyService,
    StoredResponse,
    request_fingerprint,
)

logger = logging.getLogger("runtools.idempotency")

REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[!-~]+$",
        description=(
            "Makes a retried create safe: the same key with the same request returns the "
            "first result (never a second object) for 24 hours. Use a fresh random value "
            "(a UUID) per logical call."
        ),
    ),
]


def _service(request: Request) -> IdempotencyService:
    service: IdempotencyService = runtime_of(request).idempotency
    return service


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


def _canonical(body: BaseModel | None) -> bytes:
    if body is None:
        return b""
    return json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()


def _response(stored: StoredResponse, *, replayed: bool) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    return Response(
        stored.body, status_code=stored.status_code, media_type="application/json", headers=headers
    )


async def idempotent(
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel | None,
    status_code: int,
    produce: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """Run ``produce`` once per ``key`` (when given) and answer with its JSON."""
    if key is None:
        return _response(StoredResponse(status_code, _json(await produce())), replayed=False)
    service = _service(request)
    fingerprint = request_fingerprint(request.method, request.url.path, _canonical(body))
    outcome = await anyio.to_thread.run_sync(
        lambda: service.claim(principal.credential_id, key, fingerprint)
    )
    if isinstance(outcome, StoredResponse):
        return _response(outcome, replayed=True)
    try:
        result = await produce()
    except BaseException:
        try:
            await anyio.to_thread.run_sync(lambda: service.release(outcome))
        except Exception:  # the first error is the one to report; the lease frees the key
            logger.exception("could not release an idempotency claim")
        raise
    stored = StoredResponse(status_code, _json(result))
    try:
        await anyio.to_thread.run_sync(lambda: service.complete(outcome, stored))
    except Exception:
        # The object exists and the caller gets it now; only a retry would miss the record.
        logger.exception("could not record the result of an idempotent call")
    return _response(stored, replayed=False)
