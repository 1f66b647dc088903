"""The mark a node puts on a request it forwards to another node, and its check.

A node that receives a call for a sandbox running elsewhere sends the same
request on to the owner with one more header, ``X-Runtools-Forwarded``:
``v1.<claims>.<signature>``, the claims being base64url JSON of who forwarded
it, when, the request it stands for (method, path and query), the request
id and the caller's address to keep, and a sandbox placed on the owner (a
forwarded create). The signature is HMAC-SHA256 under the node secret,
which only nodes hold. A mark is good for ``MAX_AGE_SECONDS``.

What a good mark grants the owner is narrow: keep the request id and the
caller's address, do not count the request against a rate limit a second
time, start a placed sandbox. The caller's credential is checked again by
the owner, as if the call had come straight to it: a mark never stands in
for authentication or authorization.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = ["HEADER", "MAX_AGE_SECONDS", "STATE_KEY", "BadMark", "NodeMark", "seal", "unseal"]

HEADER = "x-runtools-forwarded"
#: Where a verified mark is kept in the request's ASGI state.
STATE_KEY = "node_mark"
MAX_AGE_SECONDS = 60


class BadMark(Exception):
    """A mark that is malformed, forged, stale or for another request."""


@dataclass(frozen=True)
class NodeMark:
    node: str
    issued_at: float
    method: str
    target: str  # raw path and query, as sent
    request_id: str
    ip: str | None
    placed: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, claims: str) -> str:
    return _b64(hmac.new(secret, b"runtools-node-mark:" + claims.encode(), hashlib.sha256).digest())


def seal(mark: NodeMark, secret: bytes) -> str:
    claims = _b64(
        json.dumps(
            {
                "n": mark.node,
                "t": mark.issued_at,
                "m": mark.method,
                "p": mark.target,
                "r": mark.request_id,
                "i": mark.ip,
                "s": mark.placed,
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"v1.{claims}.{_mac(secret, claims)}"


def unseal(value: str, secret: bytes, *, method: str, target: str, now: float) -> NodeMark:
    """The mark in ``value`` if it is genuine, fresh and for this very request."""
    version, _, rest = value.partition(".")
    claims, _, signature = rest.partition(".")
    if version != "v1" or not claims or not signature:
        raise BadMark("malformed")
    if not hmac.compare_digest(signature, _mac(secret, claims)):
        raise BadMark("bad signature")
    try:
        data = json.loads(_unb64(claims))
        mark = NodeMark(
            node=str(data["n"]),
            issued_at=float(data["t"]),
            method=str(data["m"]),
            target=str(data["p"]),
            request_id=str(data["r"]),
            ip=None if data["i"] is None else str(data["i"]),
            placed=None if data["s"] is None else str(data["s"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadMark("malformed claims") from exc
    if abs(now - mark.issued_at) > MAX_AGE_SECONDS:
        raise BadMark("stale")
    if mark.method != method or mark.target != target:
        raise BadMark("for another request")
    return mark
