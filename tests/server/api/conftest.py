"""Fixtures for API tests that need the real app on a socket with real isolation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp, serve


@pytest.fixture
def sandbox_settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        sandbox_quota=3,
        sandbox_max_output_bytes=64 * 1024,
        sandbox_max_file_bytes=4 * 1024 * 1024,
        # These tests poll the API to prove it keeps answering; rate limits
        # have tests of their own.
        rate_limits=False,
        _env_file=None,
    )


@pytest.fixture
def served(sandbox_settings: Settings, secret_registry: SecretRegistry) -> Iterator[ServedApp]:
    if os.geteuid() != 0:
        pytest.skip("sandbox API tests need root (namespaces and cgroups)")
    with serve(sandbox_settings, secret_registry) as app:
        yield app


@pytest.fixture
def ada(served: ServedApp) -> Caller:
    """An admin of acme."""
    return served.caller("acme", "ada@example.com", "admin")


@pytest.fixture
def bob(served: ServedApp, ada: Caller) -> Caller:
    """A member of acme."""
    return served.caller("acme", "bob@example.com", "member")


@pytest.fixture
def eve(served: ServedApp) -> Caller:
    """An admin of another organization."""
    return served.caller("globex", "eve@globex.example", "admin")
