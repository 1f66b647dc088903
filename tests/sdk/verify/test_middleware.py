"""``VerifyMiddleware`` and ``require_scope`` in small services, against a live hub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtools.verify import VerifiedPrincipal, Verifier, VerifyMiddleware, require_scope
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp

from .conftest import new_key, sign_in

pytestmark = pytest.mark.anyio


@pytest.fixture
async def verifier(hub: ServedApp, service_key: str) -> AsyncIterator[Verifier]:
    verifier = Verifier(auth_url=hub.url, service_key=service_key)
    yield verifier
    await verifier.aclose()


def tool_service(verifier: Verifier) -> FastAPI:
    app = FastAPI()
    app.state.runtools_verifier = verifier

    @app.get("/run")
    async def run(caller: VerifiedPrincipal = Depends(require_scope("tool:*"))) -> dict[str, str]:
        return {"org": caller.org_id, "user": caller.user_id}

    return app


async def call(app: object, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        return await http.get(path, headers=headers or {})


async def test_require_scope_admits_a_key_with_the_scope_and_refuses_others(
    verifier: Verifier, ada: Caller, secret_registry: SecretRegistry
) -> None:
    app = tool_service(verifier)
    tools = new_key(ada, secret_registry, scopes=["tool:*"])
    reader = new_key(ada, secret_registry, scopes=["sandbox:read"])
    ok = await call(app, "/run", {"X-API-Key": tools["key"]})
    assert ok.status_code == 200
    assert ok.json()["user"] == ada.user_id
    lacking = await call(app, "/run", {"Authorization": f"Bearer {reader['key']}"})
    assert lacking.status_code == 403
    assert lacking.json()["detail"] == "This call requires scope tool:*"
    missing = await call(app, "/run")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="runtools"'


async def test_require_scope_takes_a_session_token_offline(
    hub: ServedApp, verifier: Verifier, ada: Caller, secret_registry: SecretRegistry
) -> None:
    token = sign_in(hub, secret_registry)
    ok = await call(tool_service(verifier), "/run", {"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert verifier.hub_calls == 0


async def test_the_middleware_refuses_before_the_app_and_hands_it_the_principal(
    verifier: Verifier, ada: Caller, secret_registry: SecretRegistry
) -> None:
    seen: list[VerifiedPrincipal] = []

    async def whoami(request: Request) -> JSONResponse:
        seen.append(request.state.runtools_principal)
        return JSONResponse({"org": request.state.runtools_principal.org_id})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    inner = Starlette(routes=[Route("/whoami", whoami), Route("/healthz", health)])
    app = VerifyMiddleware(inner, verifier, required_scopes=["tool:*"], exempt_paths=["/healthz"])
    refused = await call(
        app, "/whoami", {"X-API-Key": ada.key[:-1] + ("y" if ada.key.endswith("x") else "x")}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.json()["error"]["requestId"].startswith("req_")
    reader = new_key(ada, secret_registry, scopes=["sandbox:read"])
    lacking = await call(app, "/whoami", {"X-API-Key": reader["key"]})
    assert lacking.status_code == 403
    assert lacking.json()["error"]["message"] == "This call requires scope tool:*"
    assert seen == []
    ok = await call(app, "/whoami", {"X-API-Key": ada.key})
    assert ok.status_code == 200
    assert len(seen) == 1
    assert (await call(app, "/healthz")).status_code == 200
    two = await call(
        app, "/whoami", {"X-API-Key": ada.key, "Authorization": f"Bearer {reader['key']}"}
    )
    assert two.status_code == 400


def test_the_public_names_of_runtools_verify_are_pinned() -> None:
    import runtools.verify

    assert set(runtools.verify.__all__) == {
        "PRINCIPAL_STATE_KEY",
        "CredentialRefused",
        "HubUnavailable",
        "VerifiedPrincipal",
        "Verifier",
        "VerifyError",
        "VerifyMiddleware",
        "current_principal",
        "presented_credential",
        "require_scope",
    }
