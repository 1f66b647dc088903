"""Every error path answers in the one envelope, with a request id and nothing internal."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, params
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from runtools.server.api.route_table import iter_routes
from runtools.server.domain.errors import (
    SandboxError,
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxPathRejected,
    SandboxStateConflict,
    SandboxUnavailable,
)
from support.secret_registry import SecretRegistry
from support.tenants import Member

ENVELOPE_KEYS = {"code", "message", "requestId"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["code"] == code
    assert re.fullmatch(r"req_[0-9A-Za-z]{24}", error["requestId"])
    assert response.headers["x-request-id"] == error["requestId"]
    assert "Traceback" not in response.text
    assert "sqlalchemy" not in response.text.lower()
    return error


def test_unknown_route(client: TestClient) -> None:
    assert_envelope(client.get("/v1/nothing-here"), 404, "not_found")
    assert_envelope(client.get("/"), 404, "not_found")


def test_wrong_method(admin: Member) -> None:
    assert_envelope(admin.http.put("/v1/me", headers=admin.headers()), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "content",
    [b'{"name": ', b'{"name": "\xff"}', b"[" * 5000 + b"]" * 5000, b'{"name": 1' + b"0" * 5000],
    ids=["truncated", "not-utf-8", "too-deep", "huge-number"],
)
def test_malformed_json(admin: Member, content: bytes) -> None:
    response = admin.http.post(
        "/v1/api-keys",
        headers={**admin.headers(), "Content-Type": "application/json"},
        content=content,
    )
    error = assert_envelope(response, 400, "validation_error")
    assert error["message"] == "Malformed JSON body"
    assert response.headers["X-RateLimit-Remaining"] == "59"  # judged and counted first


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_json_body_without_a_json_content_type_is_a_415_that_says_so(
    admin: Member, content_type: str | None
) -> None:
    headers = admin.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = admin.http.post("/v1/api-keys", headers=headers, content=b'{"name": "ci"}')
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    assert response.headers["X-RateLimit-Remaining"] == "59"  # judged and counted first
    assert [k["name"] for k in admin.get("/v1/api-keys").json()["data"]] == ["bootstrap"]


def test_every_route_taking_json_refuses_it_unlabelled_the_same_way(
    admin: Member, app: FastAPI
) -> None:
    """Checked once at the boundary: no route taking a JSON body is left out."""
    json_routes = [
        route
        for route in iter_routes(app)
        if isinstance(route, APIRoute)
        and route.body_field is not None
        and not isinstance(route.body_field.field_info, params.Form)
    ]
    assert len(json_routes) >= 10
    refused = []
    for route in json_routes:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in route.methods or ():
            response = admin.http.request(
                method, path, headers={**admin.headers(), "Content-Type": "text/plain"},
                content=b"{}",
            )  # fmt: skip
            if response.status_code == 403:  # the guard answers first: sessions only
                continue
            assert_envelope(response, 415, "unsupported_media_type")
            refused.append(route.path)
    assert len(refused) >= 8


def test_a_json_content_type_with_parameters_or_a_json_suffix_is_json(admin: Member) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = admin.http.patch(
            f"/v1/api-keys/{admin.key_id}",
            headers={**admin.headers(), "Content-Type": content_type},
            content=b'{"name": "renamed"}',
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": 42},
        {"name": "x", "scopes": "sandbox:*"},
        {"name": "x", "isTest": "maybe"},
        {"name": "x", "isTest": "yes"},
        {"name": "x", "isTest": 1},
        {"name": "x", "rateLimit": "7"},
        {"name": "x", "rateLimit": True},
        {"name": "x", "rateLimit": 7.5},
        {"name": "x", "projectId": "not-a-uuid"},
        [],
        "text",
    ],
)
def test_validation_failures(admin: Member, body: Any) -> None:
    assert_envelope(admin.post("/v1/api-keys", json=body), 400, "validation_error")
    assert [k["name"] for k in admin.get("/v1/api-keys").json()["data"]] == ["bootstrap"]


def test_a_fields_snake_case_name_is_that_field_not_an_unknown_one(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    created = admin.post("/v1/api-keys", json={"name": "ci", "expires_in": "1d"})
    assert created.status_code == 201, created.text
    secret_registry.add(created.json()["data"]["key"])
    assert created.json()["data"]["expiresAt"] == "2026-01-16T12:00:00Z"  # a day on the clock
    misspelt = admin.post("/v1/api-keys", json={"name": "ci", "expiresin": "1d"})
    assert_envelope(misspelt, 400, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\u0000b"},
        {"name": "x", "scopes": ["sandbox:read\u0000"]},
        {"name": "x", "projectId": None, "expiresIn": "1d\u0000"},
    ],
)
def test_nul_characters_in_a_body_are_refused_on_every_database(admin: Member, body: Any) -> None:
    # PostgreSQL cannot store a NUL: unchecked, this was a 500 there and a stored NUL on SQLite.
    error = assert_envelope(admin.post("/v1/api-keys", json=body), 400, "validation_error")
    assert "NUL" in error["message"]
    assert [k["name"] for k in admin.get("/v1/api-keys").json()["data"]] == ["bootstrap"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/api-keys/key%00",
        "/v1/sandboxes/box%00",
        "/v1/audit-logs?action=auth.failed%00",
        "/v1/sandboxes?tags=a%00b",
        "/v1/api-keys?cursor=%00",
    ],
)
def test_nul_characters_in_a_path_or_query_are_refused(admin: Member, path: str) -> None:
    error = assert_envelope(admin.get(path), 400, "invalid_request")
    assert "NUL" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sandboxes?status=running&status=paused",
        "/v1/audit-logs?action=auth.failed&limit=5&action=key.created",
        "/v1/api-keys?limit=1&limit=100",
    ],
)
def test_a_query_parameter_given_twice_is_refused_not_half_applied(
    admin: Member, path: str
) -> None:
    error = assert_envelope(admin.get(path), 400, "invalid_request")
    assert "more than once" in error["message"]
    assert "comma-separated" in error["message"]
    assert admin.get("/v1/sandboxes?status=running,paused").status_code == 200


def test_nul_characters_in_sign_in_and_oauth_forms_are_refused(client: TestClient) -> None:
    signed_in = client.post(
        "/v1/auth/login", json={"email": "ada\u0000@example.com", "password": "x"}
    )
    assert_envelope(signed_in, 400, "validation_error")
    token = client.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": "rt\u0000", "client_id": "cli"},
    )
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_request"
    assert "NUL" in token.json()["error_description"]


def test_oversized_body_declared(admin: Member) -> None:
    response = admin.post("/v1/api-keys", json={"name": "x" * 2_000_000})
    assert_envelope(response, 413, "payload_too_large")


def test_oversized_body_streamed_without_length(admin: Member) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65_536

    response = admin.http.post(
        "/v1/api-keys",
        headers={**admin.headers(), "Content-Type": "application/json"},
        content=chunks(),
    )
    assert_envelope(response, 413, "payload_too_large")


def test_oversized_headers(client: TestClient) -> None:
    response = client.get("/v1/me", headers={"X-Padding": "a" * 20_000})
    assert_envelope(response, 431, "headers_too_large")


def test_unauthenticated_forbidden_and_not_found(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    assert_envelope(admin.http.get("/v1/me"), 401, "unauthorized")
    reader = admin.create_key(secret_registry, scopes=["sandbox:read"])
    assert_envelope(
        admin.http.get("/v1/api-keys", headers={"X-API-Key": reader["key"]}), 403, "forbidden"
    )
    assert_envelope(admin.get("/v1/api-keys/key_missing"), 404, "not_found")


def test_conflict(admin: Member, secret_registry: SecretRegistry) -> None:
    key = admin.create_key(secret_registry)
    admin.delete(f"/v1/api-keys/{key['id']}")
    assert_envelope(admin.post(f"/v1/api-keys/{key['id']}/rotate", json={}), 409, "conflict")


def test_internal_error_says_nothing_about_why(app: FastAPI) -> None:
    def explode() -> None:
        raise RuntimeError("secret detail: rt_live_should_not_leak")

    app.add_api_route("/boom", explode)
    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    error = assert_envelope(response, 500, "internal_error")
    assert "secret detail" not in response.text
    assert error["message"] == "Internal server error"


def test_database_errors_never_reach_the_client(app: FastAPI) -> None:
    def query() -> None:
        raise OperationalError("SELECT key_hash FROM api_keys", {}, Exception("boom"))

    app.add_api_route("/db", query)
    response = TestClient(app, raise_server_exceptions=False).get("/db")
    assert_envelope(response, 500, "internal_error")
    assert "key_hash" not in response.text


@pytest.mark.parametrize(
    "lower",
    [
        OSError(2, "No such file or directory", "/var/lib/runtools/sandboxes/x/state.json"),
        subprocess.CalledProcessError(1, ["/usr/bin/bwrap", "--secret-arg"], b"", b"bwrap: boom"),
        subprocess.TimeoutExpired(["/usr/bin/nsenter", "--target", "4242"], 5),
        json.JSONDecodeError("Expecting value", '{"uid": 70001, "init"', 20),
    ],
    ids=["os", "subprocess", "subprocess-timeout", "json"],
)
def test_lower_layer_errors_never_reach_the_client(app: FastAPI, lower: Exception) -> None:
    def fail() -> None:
        raise lower

    app.add_api_route("/lower", fail)
    response = TestClient(app, raise_server_exceptions=False).get("/lower")
    error = assert_envelope(response, 500, "internal_error")
    assert error["message"] == "Internal server error"
    for detail in ("/var/lib", "bwrap", "nsenter", "uid", "Errno", "Expecting"):
        assert detail not in response.text


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SandboxNotFound("sandbox sandbox-abc not found"), 404, "not_found"),
        (SandboxStateConflict("sandbox sandbox-abc is paused"), 409, "conflict"),
        (SandboxPathRejected("path escapes the sandbox: ../etc"), 400, "invalid_request"),
        (SandboxFileTooLarge("no space left in the sandbox for x"), 413, "payload_too_large"),
        (SandboxUnavailable("bubblewrap is not installed"), 503, "sandbox_unavailable"),
        (SandboxError("sandbox did not become ready in time"), 500, "sandbox_error"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_sandbox_errors_render_as_the_kind_they_are(
    app: FastAPI, error: SandboxError, status: int, code: str
) -> None:
    def fail() -> None:
        raise error

    app.add_api_route("/sandbox-error", fail)
    response = TestClient(app, raise_server_exceptions=False).get("/sandbox-error")
    assert assert_envelope(response, status, code)["message"] == error.message


def test_success_responses_carry_a_request_id(admin: Member) -> None:
    response = admin.get("/v1/me")
    assert response.json()["meta"]["requestId"] == response.headers["x-request-id"]
    assert admin.http.get("/healthz").headers["x-request-id"].startswith("req_")
