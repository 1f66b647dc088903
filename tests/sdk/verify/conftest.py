"""A live hub (the real service on a socket) and a service credential for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtools.server import operator
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp, serve

PASSWORD = "correct horse battery staple"


class Ticking:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(
        home=tmp_path / "home", database_url=database_url, rate_limits=False, _env_file=None
    )
    with serve(settings, secret_registry) as app:
        yield app


@pytest.fixture
def service_key(hub: ServedApp) -> str:
    return hub.caller("platform", "tools@platform.example", "member", scopes=["auth:verify"]).key


@pytest.fixture
def ada(hub: ServedApp) -> Caller:
    caller = hub.caller("acme", "ada@example.com", "admin")
    operator.set_first_password(hub.runtime, "ada@example.com", PASSWORD)
    return caller


@pytest.fixture
def clock() -> Ticking:
    return Ticking()


def sign_in(
    hub: ServedApp,
    registry: SecretRegistry,
    email: str = "ada@example.com",
    password: str = PASSWORD,
) -> str:
    """An access token for ``email`` (a blocking call: the hub runs in another thread)."""
    response = httpx.post(
        f"{hub.url}/v1/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    tokens = response.json()["data"]
    registry.add(tokens["accessToken"])
    registry.add(tokens["refreshToken"])
    token: str = tokens["accessToken"]
    return token


def new_key(caller: Caller, registry: SecretRegistry, **body: object) -> dict[str, str]:
    response = caller.post("/v1/api-keys", json={"name": "k", **body})
    assert response.status_code == 201, response.text
    data: dict[str, str] = response.json()["data"]
    registry.add(data["key"])
    return data
