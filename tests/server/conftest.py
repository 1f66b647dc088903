"""Fixtures for the service: an app on a frozen clock, clients, bootstrapped tenants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtools.server.app import create_app, runtime_of
from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    application = create_app(settings, clock=clock)
    yield application
    runtime_of(application).close()


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    return runtime_of(app)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def tenants(runtime: Runtime, client: TestClient, secret_registry: SecretRegistry) -> Tenants:
    return Tenants(runtime, client, secret_registry)


@pytest.fixture
def admin(tenants: Tenants) -> Member:
    return tenants.member("acme", "ada@example.com", "admin")


@pytest.fixture
def member(tenants: Tenants, admin: Member) -> Member:
    return tenants.member("acme", "bob@example.com", "member")


@pytest.fixture
def outsider(tenants: Tenants) -> Member:
    return tenants.member("globex", "eve@globex.example", "admin")
