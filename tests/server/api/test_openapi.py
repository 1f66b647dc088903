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
