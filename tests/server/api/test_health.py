from fastapi.testclient import TestClient

from runtools.server.runtime import Runtime


def test_liveness_and_readiness_are_public(client: TestClient) -> None:
    assert client.get("/healthz").json()["data"] == {"status": "ok"}
    assert client.get("/readyz").json()["data"] == {"status": "ready"}


def test_readiness_fails_when_the_database_is_gone(client: TestClient, runtime: Runtime) -> None:
    from sqlalchemy import create_engine

    runtime.database.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
