"""``VerifyMiddleware``: an ASGI middleware that lets only verified callers through.

Plain ASGI (no framework needed). For every HTTP request and WebSocket
connection (paths in ``exempt_paths`` aside) it verifies the caller's
credential and leaves the ``VerifiedPrincipal`` in
``scope["state"]["runtools_principal"]`` (``request.state.runtools_principal``
in Starlette and FastAPI). A refusal is answered here: the RunTools error
envelope with 400, 401 (with ``WWW-Authenticate``), 403 or 503; a WebSocket
is closed with 4400, 4401, 4403 or 1011.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from runtools.verify._errors import VerifyError
from runtools.verify._verifier import Verifier, presented_credential

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the principal is left in the ASGI scope's ``state``.
PRINCIPAL_STATE_KEY = "runtools_principal"


class VerifyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier | None = None,
        *,
        required_scopes: Iterable[str] = (),
        exempt_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier or Verifier()
        self._required = tuple(required_scopes)
        self._exempt = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self._exempt:
            await self.app(scope, receive, send)
            return
        try:
            credential = presented_credential(scope.get("headers") or ())
            principal = await self.verifier.verify(credential, self._required)
        except VerifyError as exc:
            await _refuse(scope, send, exc)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, error: VerifyError) -> None:
    if scope["type"] == "websocket":
        code = 1011 if error.status_code >= 500 else 4000 + error.status_code
        await send({"type": "websocket.close", "code": code})
        return
    request_id = "req_" + secrets.token_urlsafe(18)
    body = json.dumps(
        {"error": {"code": error.code, "message": error.message, "requestId": request_id}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if error.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="runtools"'))
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
