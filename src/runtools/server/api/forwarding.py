"""Any node answers any sandbox call: a call for a sandbox held elsewhere is forwarded.

When the sandbox service finds the sandbox runs on another live node it
raises ``HeldElsewhere``; the handler here sends the same request (method,
path, query, headers, body streamed as it arrives) to that node's
advertised URL with a node mark (``domain/node_mark.py``) and streams the
answer back unchanged: status, headers, body, Server-Sent Events as they
come. Closing the client connection closes the forwarded one, so the owner
kills a streamed command as it would for a direct caller. The request id
is the receiving node's, kept by the owner; the rate-limit headers are the
receiving node's, which counted the request (the owner does not count it
again).

The owner authenticates and authorizes the forwarded call itself, from the
caller's own credential headers: a mark never stands in for either. A mark
that does not verify (no node secret, forged, stale, for another request)
is refused with 403 before anything else runs.

The receiving node may have raised ``HeldElsewhere`` from what it remembers
of where the sandbox is (``services/sandboxes/locations``) rather than from
the database; an owner that does not answer, or answers 404 or 409, makes it
forget, as does a destroy. The connections to other nodes are kept alive
(``node_client``).

A create placed on another node (``HeldElsewhere.placed``) is forwarded the
same way; if that node does not start it (no answer, or any reply but 201),
the place it held is freed here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Scope

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.errors import render
from runtools.server.api.node_client import NodeClient, NodeUnreachable, Reply
from runtools.server.domain.errors import Conflict, HeldElsewhere, SandboxUnavailable
from runtools.server.domain.node_mark import HEADER, STATE_KEY, BadMark, NodeMark, seal, unseal

__all__ = ["Forwarder"]

# Hop-by-hop headers (RFC 9110 §7.6.1) and those each hop sets for itself.
_NOT_FORWARDED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",  # answered here, where the body is read
        HEADER.encode(),
    }
)
_NOT_RELAYED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"date",
        b"server",
        b"x-request-id",
    }
)

# Answers after which this node looks the sandbox up again (``services/sandboxes/locations``).
_STALE = frozenset({404, 409, 410})
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class Forwarder:
    """Sends calls on to the node holding the sandbox; checks the marks of calls received."""

    def __init__(self, *, node: str, url: str, secret: bytes | None) -> None:
        self.node = node
        self.url = url.rstrip("/")
        self._secret = secret
        self._client = NodeClient()

    def inbound(self, scope: Scope, value: bytes) -> NodeMark:
        """The verified mark of a forwarded call; ``BadMark`` for anything else."""
        if self._secret is None:
            raise BadMark("this node takes no forwarded calls")
        return unseal(
            value.decode("latin-1"),
            self._secret,
            method=scope["method"],
            target=_target(scope),
            now=time.time(),
        )

    async def forward(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HeldElsewhere)
        if self._secret is None or STATE_KEY in request.scope["state"] or exc.url == self.url:
            # A forwarded call must end on its owner: another hop means the nodes'
            # addresses disagree with their names.
            if exc.sandbox is not None:
                runtime_of(request).sandboxes.locations.forget(exc.sandbox)
            return await render(
                request,
                Conflict(
                    f"Sandbox is held by node {exc.node}, which this node cannot reach as "
                    f"{exc.url}; check RUNTOOLS_NODE_URL and RUNTOOLS_SANDBOX_NODE of each node"
                ),
            )
        context = request_context(request)
        mark = NodeMark(
            node=self.node,
            issued_at=time.time(),
            method=request.method,
            target=_target(request.scope),
            request_id=request_id_of(request),
            ip=context.ip,
            placed=exc.placed,
        )
        headers = [(k, v) for k, v in request.scope["headers"] if k not in _NOT_FORWARDED]
        headers.append((HEADER.encode(), seal(mark, self._secret).encode()))
        framing = {k: v for k, v in request.scope["headers"] if k in _FRAMING}
        has_body = bool(framing)
        length = None
        if b"content-length" in framing and b"transfer-encoding" not in framing:
            length = int(framing[b"content-length"])
        locations = runtime_of(request).sandboxes.locations
        try:
            upstream = await self._client.send(
                exc.url.rstrip("/"),
                request.method,
                mark.target,
                headers,
                request.stream() if has_body else None,
                length=length,
            )
        except NodeUnreachable:
            if exc.sandbox is not None:
                locations.forget(exc.sandbox)
            if exc.placed is not None:
                await runtime_of(request).sandboxes.abandon_placed(
                    exc.placed, f"node {exc.node} did not answer when asked to start it"
                )
            return await render(
                request,
                SandboxUnavailable(
                    f"Node {exc.node}, which holds this sandbox, did not answer; try again shortly"
                ),
            )
        if exc.sandbox is not None and (upstream.status in _STALE or request.method == "DELETE"):
            locations.forget(exc.sandbox)
        if exc.placed is not None and upstream.status != 201:
            await runtime_of(request).sandboxes.abandon_placed(
                exc.placed, f"node {exc.node} did not start it"
            )
        relayed = [(k, v) for k, v in upstream.headers if k not in _NOT_RELAYED]
        response = StreamingResponse(_relay(upstream), status_code=upstream.status)
        response.raw_headers = relayed
        return response

    async def close(self) -> None:
        await self._client.close()


def _target(scope: Scope) -> str:
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return (path + (b"?" + query if query else b"")).decode("latin-1")


async def _relay(upstream: Reply) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream:
            yield chunk
    finally:
        await upstream.aclose()
