"""HTTP/1.1 from this node to the others: kept-alive connections, bytes passed through.

What forwarding (``forwarding``) needs and nothing more: send one request
(its head and, when the body is already here, the body in one write), read
the status and headers, then hand the body on chunk by chunk as it arrives,
with its framing (length or chunks) undone and nothing parsed. A connection
whose answer was read to the end goes back to its node's idle set and serves
the next call; one closed early (the caller left mid-stream) is closed, so
the other node sees the caller leave. A general client spent more on each
hop than the whole of the rest of the forwarding.

A body streamed from the caller (an upload) always gets a new connection: a
kept-alive one the other node closes as the request starts could not be
retried without the bytes already sent. A request with no body, or one
already read, is retried once on a new connection when a kept-alive one
turns out to be closed before any answer came.

Not here: which headers go where, node marks (``forwarding``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["NodeClient", "NodeUnreachable", "Reply"]

_MAX_HEAD_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
Headers = list[tuple[bytes, bytes]]


class NodeUnreachable(Exception):
    """The other node did not answer, or broke off before its answer began."""


@dataclass(frozen=True)
class _Peer:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> bytes:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode()


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Reply:
    """The other node's answer: status and headers now, the body as it comes."""

    status: int
    headers: Headers
    _chunks: AsyncGenerator[bytes, None]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        await self._chunks.aclose()


class NodeClient:
    def __init__(self, *, connect_timeout: float = 5.0, max_idle_per_node: int = 32) -> None:
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle_per_node
        self._idle: dict[_Peer, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

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
        peer = _peer_of(base_url)
        first = b""
        rest_known = False
        if body is not None:
            first = await anext(body, b"")  # small bodies go with the head, in one write
            rest_known = length is not None and len(first) >= length
        head = _head(method, target, peer, headers, body is not None, length)
        replayable = body is None or rest_known
        for attempt in (0, 1):
            conn = await self._connection(peer, fresh=attempt > 0 or not replayable)
            try:
                await self._write_request(conn, head, first, None if replayable else body, length)
                status, reply_headers = await _read_head(conn.reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                if conn.reused and replayable and attempt == 0:
                    continue
                raise NodeUnreachable(str(exc) or type(exc).__name__) from exc
            except BaseException:
                conn.close()
                raise
            return Reply(
                status, reply_headers, self._body(peer, conn, method, status, reply_headers)
            )
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for connections in self._idle.values():
            for conn in connections:
                conn.close()
        self._idle.clear()

    async def _connection(self, peer: _Peer, *, fresh: bool) -> _Connection:
        idle = self._idle.get(peer)
        while idle and not fresh:
            conn = idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        tls = None
        if peer.scheme == "https":
            tls = self._tls or _tls_context()
            self._tls = tls
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    peer.host,
                    peer.port,
                    ssl=tls,
                    limit=_MAX_HEAD_BYTES,
                    server_hostname=None if tls is None else peer.host,
                ),
                self._connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise NodeUnreachable(str(exc) or type(exc).__name__) from exc
        return _Connection(reader, writer)

    async def _write_request(
        self,
        conn: _Connection,
        head: bytes,
        first: bytes,
        rest: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> None:
        chunked = rest is not None and length is None
        conn.writer.write(head + (_chunk(first) if chunked and first else first))
        if rest is not None:
            async for piece in rest:
                if piece:
                    conn.writer.write(_chunk(piece) if chunked else piece)
                    await conn.writer.drain()
            if chunked:
                conn.writer.write(b"0\r\n\r\n")
        await conn.writer.drain()

    async def _body(
        self, peer: _Peer, conn: _Connection, method: str, status: int, headers: Headers
    ) -> AsyncGenerator[bytes, None]:
        done = False
        try:
            names = {k: v for k, v in headers}
            keep = names.get(b"connection", b"").lower() != b"close"
            if method == "HEAD" or status in _NO_BODY_STATUSES:
                pass
            elif b"chunked" in names.get(b"transfer-encoding", b"").lower():
                async for piece in _chunks(conn.reader):
                    yield piece
            elif b"content-length" in names:
                left = int(names[b"content-length"])
                while left > 0:
                    piece = await conn.reader.read(min(left, _CHUNK))
                    if not piece:
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(piece)
                    yield piece
            else:
                keep = False
                while piece := await conn.reader.read(_CHUNK):
                    yield piece
            done = keep
        finally:
            if done and conn.usable():
                idle = self._idle.setdefault(peer, [])
                if len(idle) < self._max_idle:
                    conn.reused = False
                    idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()


def _peer_of(base_url: str) -> _Peer:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NodeUnreachable(f"not an http(s) address: {base_url!r}")
    return _Peer(
        parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    )


def _tls_context() -> ssl.SSLContext:
    try:
        import certifi  # what a general client would trust: httpx's own bundle
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _head(
    method: str, target: str, peer: _Peer, headers: Headers, has_body: bool, length: int | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"host: " + peer.authority]
    lines += [name + b": " + value for name, value in headers]
    if has_body:
        lines.append(
            b"transfer-encoding: chunked" if length is None else b"content-length: %d" % length
        )
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, Headers]:
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ValueError("answer headers too large") from exc
        status_line, *lines = raw[:-4].split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
        status = int(rest[:3])
        if 100 <= status < 200:
            continue  # 100 Continue and the like: the answer follows
        headers: Headers = []
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"malformed header line: {line[:40]!r}")
            headers.append((name.strip().lower(), value.strip()))
        return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, dropped
                pass
            return
        left = size
        while left > 0:
            piece = await reader.read(min(left, _CHUNK))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            yield piece
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("malformed chunk")
