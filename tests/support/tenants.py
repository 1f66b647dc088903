"""Organizations and members made as an operator would, with clients that use their keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from runtools.server import operator
from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry


@dataclass
class Member:
    """A user of an org holding a ``*`` API key, with a client that sends it.

    Starlette types ``TestClient`` against httpx2, which is not installed, so
    its methods read as ``Any``; these say what they return.
    """

    org_id: str
    org_name: str
    user_id: str
    email: str
    role: str
    key: str
    key_id: str
    http: TestClient

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"X-API-Key": key or self.key}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.get(path, headers=self.headers(), **kwargs)
        return response

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.post(path, headers=self.headers(), **kwargs)
        return response

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.patch(path, headers=self.headers(), **kwargs)
        return response

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.delete(path, headers=self.headers(), **kwargs)
        return response

    def create_key(self, registry: SecretRegistry, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "test key")
        response = self.post("/v1/api-keys", json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        registry.add(data["key"])
        return data


class Tenants:
    """Creates organizations and members directly, as an operator would."""

    def __init__(self, runtime: Runtime, client: TestClient, registry: SecretRegistry) -> None:
        self.runtime = runtime
        self.client = client
        self.registry = registry
        self._orgs: set[str] = set()

    def member(
        self,
        org: str = "acme",
        email: str = "ada@example.com",
        role: str = "admin",
        scopes: list[str] | None = None,
        password: str | None = None,
    ) -> Member:
        if org not in self._orgs:
            operator.create_org(self.runtime, org)
            self._orgs.add(org)
        joined = operator.create_user(
            self.runtime, email, org_name=org, role=role, password=password, display_name=None
        )
        issued, org_row, _owner = operator.create_key(
            self.runtime,
            org_name=org,
            email=email,
            name="bootstrap",
            scopes=scopes or ["*"],
            expires_in=None,
            is_test=False,
        )
        self.registry.add(issued.secret)
        return Member(
            org_id=org_row.id,
            org_name=org_row.name,
            user_id=joined.user.id,
            email=email,
            role=role,
            key=issued.secret,
            key_id=issued.view.id,
            http=self.client,
        )


def tampered(secret: str) -> str:
    """``secret`` with its last character changed (always to a different one)."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")
