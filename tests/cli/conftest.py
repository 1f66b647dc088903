"""Fixtures for the CLI: a real server on a socket in this process, and the command beside it.

``cli`` runs ``runtools`` in-process (see ``support.cli``) against
``served``, with a config directory of its own; ``ada`` is an admin of acme
with a password and a ``*`` key, made as an operator would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtools import LoginStore, StoredLogin
from runtools.server import operator
from runtools.server.domain.errors import ServiceError
from runtools.server.settings import Settings
from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve

PASSWORD = "correct horse battery staple"


@pytest.fixture
def served(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        device_poll_interval_seconds=1,
        _env_file=None,
    )
    with serve(settings, secret_registry) as app:
        yield app


@pytest.fixture
def cli(served: ServedApp, tmp_path: Path) -> CommandLine:
    return CommandLine(
        {"RUNTOOLS_API_URL": served.url, "RUNTOOLS_CONFIG_DIR": str(tmp_path / "cli")}
    )


@dataclass
class Person:
    """A user with a password and a ``*`` key in an organization."""

    email: str
    org: str
    key: str
    key_id: str


def person(
    served: ServedApp, registry: SecretRegistry, email: str, org: str = "acme", role: str = "admin"
) -> Person:
    runtime = served.runtime
    with contextlib.suppress(ServiceError):  # the organization exists already
        operator.create_org(runtime, org)
    operator.create_user(
        runtime, email, org_name=org, role=role, password=PASSWORD, display_name=None
    )
    key, key_id = mint(served, registry, email, org=org, name="bootstrap")
    return Person(email, org, key, key_id)


def mint(
    served: ServedApp,
    registry: SecretRegistry,
    email: str = "ada@example.com",
    *,
    org: str = "acme",
    name: str = "key",
    scopes: tuple[str, ...] = ("*",),
) -> tuple[str, str]:
    """A new key of a member, made as an operator would: (secret, id)."""
    issued, _org, _owner = operator.create_key(
        served.runtime, org_name=org, email=email, name=name, scopes=list(scopes),
        expires_in=None, is_test=False,
    )  # fmt: skip
    registry.add(issued.secret)
    return issued.secret, issued.view.id


@pytest.fixture
def ada(served: ServedApp, secret_registry: SecretRegistry) -> Person:
    return person(served, secret_registry, "ada@example.com")


def sign_in(
    url: str, config: Path, registry: SecretRegistry, email: str = "ada@example.com", **body: Any
) -> StoredLogin:
    """A terminal with its own config dir, signed in with a password (as `runtools login` ends)."""
    response = httpx.post(
        f"{url}/v1/auth/login",
        json={"email": email, "password": PASSWORD, "clientName": "laptop", **body},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    registry.add(data["accessToken"])
    registry.add(data["refreshToken"])
    login = StoredLogin(
        api_url=url,
        type="session",
        access_token=data["accessToken"],
        refresh_token=data["refreshToken"],
        expires_at=datetime.now(UTC) + timedelta(seconds=data["expiresIn"]),
        session_id=data["sessionId"],
    )
    LoginStore(config).save(login)
    return login
