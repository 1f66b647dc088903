"""A small ASGI app that speaks the RunTools wire contract, for testing the SDK.

It implements just enough of ``/v1/me``, ``/v1/api-keys`` and
``/v1/audit-logs`` (envelopes, errors, cursor paging, idempotency keys) and
adds what the real service cannot be asked to do on cue: fail the next
request with a chosen status, headers or body, before or after doing the
work. Every request is recorded so tests can inspect what the SDK sent.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Json = dict[str, Any]
Handler = Callable[[Request, Any], tuple[int, Json]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass(frozen=True)
class Fault:
    """How to answer one upcoming request instead of (or after) handling it."""

    status: int
    code: str | None = "injected"
    message: str = "Injected failure"
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    after_handling: bool = False
    delay: float = 0.0


class WireError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeRunTools:
    """The state behind the test app; tests drive and inspect it."""

    def __init__(self, *, on_secret: Callable[[str], object] = lambda secret: None) -> None:
        # on_secret sees every plaintext credential minted, so a suite can
        # check that none of them ever reaches a log.
        self._on_secret = on_secret
        self.api_key = self._mint("rt_test_" + secrets.token_hex(16))
        self.access_token = self._mint("tok_" + secrets.token_hex(16))
        self.requests: list[RecordedRequest] = []
        self.keys: dict[str, Json] = {}
        self.audit: list[Json] = []
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._idempotent: dict[str, tuple[int, Json]] = {}

    def _mint(self, secret: str) -> str:
        self._on_secret(secret)
        return secret

    # What tests call -------------------------------------------------------

    def fail_next(self, method: str, path: str, fault: Fault, *, times: int = 1) -> None:
        queue = self._faults.setdefault((method.upper(), path), deque())
        queue.extend([fault] * times)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def seed_audit(self, count: int) -> None:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        for i in range(count):
            self.audit.append(
                {
                    "id": f"aud_{i:04d}",
                    "action": "api_key.create" if i % 2 == 0 else "api_key.revoke",
                    "actorType": "user",
                    "actorId": "usr_1",
                    "orgId": "org_1",
                    "targetType": "api_key",
                    "targetId": f"key_{i}",
                    "outcome": "success",
                    "reason": None,
                    "ip": "127.0.0.1",
                    "userAgent": "test",
                    "requestId": f"req_{i}",
                    "createdAt": (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
                    "details": {"n": i},
                }
            )

    # The app ---------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/v1/me", self._endpoint(self._me), methods=["GET"]),
            Route("/v1/api-keys", self._endpoint(self._list_keys), methods=["GET"]),
            Route("/v1/api-keys", self._endpoint(self._create_key), methods=["POST"]),
            Route("/v1/api-keys/{key_id}", self._endpoint(self._get_key), methods=["GET"]),
            Route("/v1/api-keys/{key_id}", self._endpoint(self._update_key), methods=["PATCH"]),
            Route("/v1/api-keys/{key_id}", self._endpoint(self._revoke_key), methods=["DELETE"]),
            Route(
                "/v1/api-keys/{key_id}/rotate", self._endpoint(self._rotate_key), methods=["POST"]
            ),
            Route("/v1/audit-logs", self._endpoint(self._list_audit), methods=["GET"]),
        ]
        return Starlette(routes=routes)

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = "req_" + uuid.uuid4().hex[:16]
            raw = await request.body()
            body = json.loads(raw) if raw else None
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    raw_path=request.scope.get("raw_path", b"").decode(),
                    query=dict(request.query_params),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
            )
            queue = self._faults.get((request.method, request.url.path))
            fault = queue.popleft() if queue else None
            if fault is not None and not fault.after_handling:
                return await self._fault_response(fault, request_id)
            try:
                self._authenticate(request)
                status, payload = await self._idempotent_call(handler, request, body)
            except WireError as exc:
                return _error(exc.status, exc.code, exc.message, request_id)
            if fault is not None:
                return await self._fault_response(fault, request_id)
            payload = {**payload, "meta": {**payload.get("meta", {}), "requestId": request_id}}
            return JSONResponse(payload, status, headers={"X-Request-Id": request_id})

        return endpoint

    async def _fault_response(self, fault: Fault, request_id: str) -> Response:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        headers = {"X-Request-Id": request_id, **fault.headers}
        if fault.raw_body is not None:
            return Response(fault.raw_body, fault.status, headers=headers, media_type="text/html")
        body = {"error": {"code": fault.code, "message": fault.message, "requestId": request_id}}
        return JSONResponse(body, fault.status, headers=headers)

    async def _idempotent_call(
        self, handler: Handler, request: Request, body: Any
    ) -> tuple[int, Json]:
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and key:
            if key in self._idempotent:
                return self._idempotent[key]
            result = handler(request, body)
            self._idempotent[key] = result
            return result
        return handler(request, body)

    def _authenticate(self, request: Request) -> str:
        api_key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization")
        if api_key and authorization:
            raise WireError(400, "invalid_request", "Send one credential, not two")
        if api_key == self.api_key:
            return "api_key"
        if authorization == f"Bearer {self.access_token}":
            return "session"
        raise WireError(401, "unauthorized", "Invalid or missing authentication")

    # Handlers --------------------------------------------------------------

    def _me(self, request: Request, body: Any) -> tuple[int, Json]:
        kind = self._authenticate(request)
        return 200, {
            "data": {
                "organization": {"id": "org_1", "name": "Acme"},
                "user": {"id": "usr_1", "email": "ada@example.com", "role": "admin"},
                "credential": {
                    "type": kind,
                    "id": "key_env" if kind == "api_key" else "ses_1",
                    "name": "test",
                    "keyPrefix": self.api_key[:12] if kind == "api_key" else None,
                    "scopes": ["*"],
                    "expiresAt": None,
                },
                "effectiveScopes": ["*"],
                "featureFlags": {"newer": True},
            }
        }

    def _new_key(self, name: str, scopes: list[str], is_test: bool, project: Any) -> Json:
        key_id = f"key_{len(self.keys) + 1:04d}"
        secret = self._mint(("rt_test_" if is_test else "rt_live_") + secrets.token_hex(19))
        record = {
            "id": key_id,
            "name": name,
            "keyPrefix": secret[:12],
            "scopes": scopes or ["*"],
            "projectId": project,
            "expiresAt": None,
            "lastUsedAt": None,
            "revokedAt": None,
            "createdAt": _now(),
            "status": "active",
            "ownerUserId": "usr_1",
            "ownerDisplayName": "Ada",
            "ownerEmail": "ada@example.com",
            "isTest": is_test,
        }
        self.keys[key_id] = record
        return {**record, "key": secret}

    def _find_key(self, request: Request) -> Json:
        key = self.keys.get(request.path_params["key_id"])
        if key is None:
            raise WireError(404, "not_found", "API key not found")
        return key

    def _create_key(self, request: Request, body: Any) -> tuple[int, Json]:
        if not isinstance(body, dict) or not body.get("name"):
            raise WireError(400, "validation_error", "name is required")
        created = self._new_key(
            body["name"], body.get("scopes", []), body.get("isTest", False), body.get("projectId")
        )
        return 201, {"data": created, "message": "Store this key now; it will not be shown again."}

    def _list_keys(self, request: Request, body: Any) -> tuple[int, Json]:
        return 200, _page(list(self.keys.values()), request)

    def _get_key(self, request: Request, body: Any) -> tuple[int, Json]:
        return 200, {"data": self._find_key(request)}

    def _update_key(self, request: Request, body: Any) -> tuple[int, Json]:
        key = self._find_key(request)
        for field_name in ("name", "scopes", "projectId"):
            if field_name in body:
                key[field_name] = body[field_name]
        return 200, {"data": key}

    def _revoke_key(self, request: Request, body: Any) -> tuple[int, Json]:
        key = self._find_key(request)
        key.update(status="revoked", revokedAt=_now())
        return 200, {"data": key}

    def _rotate_key(self, request: Request, body: Any) -> tuple[int, Json]:
        old = self._find_key(request)
        body = body or {}
        new = self._new_key(
            body.get("name", old["name"]), old["scopes"], old["isTest"], old["projectId"]
        )
        old["rotatedToId"] = new["id"]
        if body.get("gracePeriod", "0") == "0":
            old.update(status="revoked", revokedAt=_now())
        return 201, {
            "data": {**new, "rotatedFromId": old["id"]},
            "message": "Store this key now; it will not be shown again.",
        }

    def _list_audit(self, request: Request, body: Any) -> tuple[int, Json]:
        action = request.query_params.get("action")
        entries = [e for e in self.audit if action is None or e["action"] == action]
        return 200, _page(entries, request)


def _page(items: list[Json], request: Request) -> Json:
    limit = int(request.query_params.get("limit", "20"))
    cursor = request.query_params.get("cursor")
    start = int(cursor.removeprefix("c_")) if cursor else 0
    chunk = items[start : start + limit]
    has_more = start + limit < len(items)
    return {
        "data": chunk,
        "meta": {"hasMore": has_more, "nextCursor": f"c_{start + limit}" if has_more else None},
    }


def _error(status: int, code: str, message: str, request_id: str) -> Response:
    body = {"error": {"code": code, "message": message, "requestId": request_id}}
    return JSONResponse(body, status, headers={"X-Request-Id": request_id})
