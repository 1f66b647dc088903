"""The outermost layer of our own: request ids, size limits, the access log.

A pure ASGI middleware (no ``BaseHTTPMiddleware``): it adds no task or
stream per request, which matters on the authentication hot path.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtools.server.api.envelope import error_body
from runtools.server.domain.ids import new_request_id
from runtools.server.domain.node_mark import HEADER as NODE_MARK_HEADER
from runtools.server.domain.node_mark import STATE_KEY as NODE_MARK
from runtools.server.domain.node_mark import BadMark, NodeMark
from runtools.server.ratelimit.meters import STATE_KEY as RATE_LIMIT_HEADERS

access_log = logging.getLogger("runtools.access")
_MARK = NODE_MARK_HEADER.encode()


async def send_error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body = json.dumps(error_body(code, message, request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class BodyLimit:
    """A route whose bodies may be larger (or must be smaller) than the default."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


class WireMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_header_bytes: int,
        observe: Callable[[Scope, int, float], None] | None = None,
        body_limits: Sequence[BodyLimit] = (),
        node_marks: Callable[[Scope, bytes], NodeMark] | None = None,
    ) -> None:
        self.app = app
        # Checks the mark of a sandbox call another node forwarded (``api/forwarding``).
        self.node_marks = node_marks
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        # Called once per response with (scope, status, seconds): the metrics hook.
        self.observe = observe
        self.body_limits = tuple(body_limits)

    def _body_limit(self, scope: Scope) -> int:
        for rule in self.body_limits:
            if scope.get("method") == rule.method and rule.path.fullmatch(scope.get("path", "")):
                return rule.max_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        if self.node_marks is not None and scope["path"].startswith("/v1/sandboxes"):
            mark_value = next((v for k, v in scope["headers"] if k == _MARK), None)
            if mark_value is not None:
                try:
                    mark = self.node_marks(scope, mark_value)
                except BadMark:
                    await send_error(
                        send,
                        403,
                        "forbidden",
                        f"{NODE_MARK_HEADER} is for calls between nodes, signed with the "
                        "node secret; this one does not verify",
                        request_id,
                    )
                    self._log(scope, 403, started)
                    return
                # One call, one id: the receiving node's.
                request_id = mark.request_id
                state["request_id"] = request_id
                state[NODE_MARK] = mark
        header_bytes = sum(map(len, chain.from_iterable(scope["headers"])))
        if header_bytes > self.max_header_bytes:
            await send_error(
                send, 431, "headers_too_large", "Request headers too large", request_id
            )
            self._log(scope, 431, started)
            return
        query = scope["query_string"]
        if "\0" in scope["path"] or (query and (b"%00" in query or b"\0" in query)):
            # No text anywhere holds a NUL (PostgreSQL cannot even store one): refused
            # here, the same on every database, before it can reach a query.
            await send_error(
                send,
                400,
                "invalid_request",
                "The path and query must not contain NUL characters",
                request_id,
            )
            self._log(scope, 400, started)
            return
        repeated = _repeated_parameter(query) if query else None
        if repeated is not None:
            # FastAPI would keep the last value silently: a filter half applied.
            await send_error(
                send,
                400,
                "invalid_request",
                f"Query parameter {repeated!r} is given more than once; "
                "pass it once (list filters take comma-separated values)",
                request_id,
            )
            self._log(scope, 400, started)
            return
        limit = self._body_limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await send_error(
                send,
                413,
                "payload_too_large",
                f"Request body exceeds {limit} bytes",
                request_id,
            )
            self._log(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"Request body exceeds {limit} bytes")
            return message

        request_id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            # Every response carries its request id, added here only (the app never sets
            # it), and the rate-limit headers of a counted request.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    request_id_header,
                    *state.get(RATE_LIMIT_HEADERS, ()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._log(scope, status, started)

    def _log(self, scope: Scope, status: int, started: float) -> None:
        if self.observe is not None:
            self.observe(scope, status, time.perf_counter() - started)
        if not access_log.isEnabledFor(logging.INFO):
            return
        state = scope.get("state", {})
        principal = state.get("principal")
        route = scope.get("route")
        access_log.info(
            json.dumps(
                {
                    "event": "request",
                    "requestId": state.get("request_id"),
                    "method": scope.get("method"),
                    # The route template, never the raw path: no ids or codes leak into logs.
                    "route": getattr(route, "path", None) or "<unmatched>",
                    "status": status,
                    "latencyMs": round((time.perf_counter() - started) * 1000, 3),
                    "principalType": getattr(principal, "credential_type", None),
                    "principalId": getattr(principal, "credential_id", None),
                }
            )
        )


def _content_length(scope: Scope) -> int | None:
    value = dict(scope["headers"]).get(b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _repeated_parameter(query: bytes) -> str | None:
    """The first query parameter name that appears twice, if any."""
    names = [name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
    if len(names) == len(set(names)):
        return None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
