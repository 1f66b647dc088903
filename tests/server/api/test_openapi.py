import re

from fastapi.testclient import TestClient


def test_schema_has_stable_operation_ids_and_both_security_schemes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerAuth"] == {"type": "http", "scheme": "bearer"}
    operations = {
        op["operationId"]: (path, method)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    }
    for expected in [
        "api-keys-create",
        "api-keys-list",
        "api-keys-get",
        "api-keys-update",
        "api-keys-revoke",
        "api-keys-rotate",
        "me-get",
        "audit-logs-list",
        "health-live",
        "health-ready",
    ]:
        assert expected in operations
    me = schema["paths"]["/v1/me"]["get"]
    assert me["security"] == [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_operation_ids_are_kebab_case_throughout(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    ids = [op["operationId"] for methods in schema["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    odd = [i for i in ids if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i)]
    assert odd == []
    assert schema["paths"]["/v1/sandboxes/{sandbox}/exec/stream"]["post"]["operationId"] == (
        "sandboxes-exec-stream"
    )
    assert schema["paths"]["/v1/sandboxes/{sandbox}/files/list"]["get"]["operationId"] == (
        "sandboxes-list-files"
    )


def test_session_only_routes_list_only_bearer_security(client: TestClient) -> None:
    """An API key is refused there, in either header: only a session's bearer token is listed."""
    schema = client.get("/openapi.json").json()
    session_only = {
        (path, method): op
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        if "a session credential" in op.get("x-requires", "")
    }
    assert ("/v1/auth/switch-org", "post") in session_only
    assert ("/v1/auth/sessions", "get") in session_only
    for op in session_only.values():
        assert op["security"] == [{"BearerAuth": []}]
    keyed = schema["paths"]["/v1/api-keys"]["post"]
    assert keyed["security"] == [{"ApiKeyHeader": []}, {"BearerAuth": []}]
