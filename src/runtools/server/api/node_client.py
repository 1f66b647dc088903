"""HTTP/1.1 from this node to the others: kept-alive connections, bytes passed through.

What forwarding (``forwarding``) needs and nothing more, on httpcore (the
transport beneath httpx; the protocol itself is h11's): send one request,
its body streamed from the caller or already here, take the status and
headers, then hand the body on chunk by chunk as it arrives, with its
framing undone and nothing parsed. Connections are pooled and kept alive;
one whose answer was not read to the end (the caller left mid-stream) is
closed, so the other node sees the caller leave. httpx's own request and
response layers cost more on each hop than the rest of forwarding together,
so they are left out; the transport is the same.

Not here: which headers go where, node marks (``forwarding``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore

__all__ = ["NodeClient", "NodeUnreachable", "Reply"]

Headers = list[tuple[bytes, bytes]]
_UNREACHABLE = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError)


class NodeUnreachable(Exception):
    """The other node did not answer, or broke off before its answer began."""


@dataclass
class Reply:
    """The other node's answer: status and headers now, the body as it comes."""

    status: int
    headers: Headers
    _response: httpcore.Response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._response.aiter_stream()

    async def aclose(self) -> None:
        await self._response.aclose()


class NodeClient:
    def __init__(self, *, connect_timeout: float = 5.0, max_idle: int = 64) -> None:
        # No read timeout: a command may run for as long as its own timeout says.
        self._timeouts = {"connect": connect_timeout, "pool": connect_timeout}
        self._pool = httpcore.AsyncConnectionPool(max_keepalive_connections=max_idle, retries=1)

    async def send(
        self,
        base_url: str,
        method: str,
        target: str,
        headers: Headers,
        body: AsyncIterator[bytes] | None,
        *,
        length: int | None,
    ) -> Reply:
        """Send ``method target`` to the node at ``base_url``; its answer once it starts.

        ``body`` is sent with ``length`` as its Content-Length, or chunked when
        the length is not known. ``NodeUnreachable`` if no answer begins.
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NodeUnreachable(f"not an http(s) address: {base_url!r}")
        framing: Headers = []
        if body is not None:
            framing.append(
                (b"transfer-encoding", b"chunked")
                if length is None
                else (b"content-length", b"%d" % length)
            )
        request = httpcore.Request(
            method.encode("latin-1"),
            httpcore.URL(
                scheme=parts.scheme.encode(),
                host=parts.hostname.encode("ascii"),
                port=parts.port,
                target=target.encode("latin-1"),
            ),
            headers=[(b"host", parts.netloc.encode("ascii")), *headers, *framing],
            content=body if body is not None else b"",
            extensions={"timeout": self._timeouts},
        )
        try:
            response = await self._pool.handle_async_request(request)
        except _UNREACHABLE as exc:
            raise NodeUnreachable(str(exc) or type(exc).__name__) from exc
        return Reply(
            response.status, [(name.lower(), value) for name, value in response.headers], response
        )

    async def close(self) -> None:
        await self._pool.aclose()
