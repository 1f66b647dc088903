from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtools.server.api.health import COUNTERS_DOWN, EVENT_LINK_DOWN
from runtools.server.app import create_app, runtime_of
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings


@pytest.fixture
def started(app: FastAPI) -> Iterator[TestClient]:
    """The app as served: started (its event link connects on start, on PostgreSQL)."""
    with TestClient(app) as client:
        yield client


def test_liveness_and_readiness_are_public(started: TestClient) -> None:
    assert started.get("/healthz").json()["data"] == {"status": "ok"}
    assert started.get("/readyz").json()["data"] == {"status": "ready", "reasons": []}


def test_a_ready_node_is_ready_for_a_strict_balancer_too(started: TestClient) -> None:
    response = started.get("/readyz", params={"strict": "true"})
    assert response.status_code == 200


def test_readiness_fails_when_the_database_is_gone(client: TestClient, runtime: Runtime) -> None:
    from sqlalchemy import create_engine

    runtime.database.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.fixture
def without_redis(tmp_path: Path, database_url: str | None) -> Iterator[TestClient]:
    """A node configured for Redis (counts and events) where nothing listens."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        _env_file=None,
    )
    app = create_app(settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        runtime_of(app).close()


def test_a_node_whose_redis_does_not_answer_is_degraded_and_says_why(
    without_redis: TestClient,
) -> None:
    response = without_redis.get("/readyz")
    assert response.status_code == 200
    assert response.json()["data"] == {
        "status": "degraded",
        "reasons": [COUNTERS_DOWN, EVENT_LINK_DOWN],
    }


def test_a_strict_balancer_routes_around_a_degraded_node(without_redis: TestClient) -> None:
    response = without_redis.get("/readyz", params={"strict": "true"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert COUNTERS_DOWN in response.json()["error"]["message"]
