"""Every route declares what it requires, in one place: its guard."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from runtools.server.api.route_table import iter_routes, route_guard

# Routes the framework adds (schema and docs) and that serve no data.
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}
PUBLIC_ROUTES = {
    "/healthz",
    "/readyz",
    "/.well-known/jwks.json",
    # Server metadata (RFC 8414): where the OAuth endpoints are.
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    # Credentials are exchanged here: a password, a refresh token or a device code.
    "/v1/auth/login",
    "/v1/auth/signup",
    "/v1/auth/refresh",
    "/v1/auth/device/code",
    "/v1/auth/token",
    # GitHub reports leaked keys unauthenticated: the report's signature is checked.
    "/v1/secret-scanning/github",
    # Browser pages authenticate with their own cookies and CSRF tokens.
    "/login",
    # Signing in with the external issuer: the answer is bound to the browser by its state.
    "/login/oidc",
    "/login/oidc/callback",
    "/logout",
    "/device",
    "/device/decision",
    # The dashboard authenticates with its session cookie itself (api/pages.py).
    "/dashboard",
    "/dashboard/static/{name}",
    "/dashboard/api-keys",
    "/dashboard/api-keys/new",
    "/dashboard/api-keys/{key_id}",
    "/dashboard/api-keys/{key_id}/revoke",
    "/dashboard/api-keys/{key_id}/rotate",
    "/dashboard/confirm-password",
    "/dashboard/sessions",
    "/dashboard/sessions/{session_id}/revoke",
    "/dashboard/sessions/revoke-others",
    "/dashboard/switch-org",
    "/dashboard/ssh-keys",
    "/dashboard/ssh-keys/{key_id}/remove",
    "/dashboard/audit-log",
    "/dashboard/team",
    "/dashboard/projects",
    "/dashboard/projects/{project_id}/rename",
    "/dashboard/projects/{project_id}/delete",
    "/dashboard/sandboxes",
    "/dashboard/sandboxes/{sandbox}",
    "/dashboard/sandboxes/{sandbox}/exec",
    "/dashboard/sandboxes/{sandbox}/exec/stream",
    "/dashboard/sandboxes/{sandbox}/{action}",
    "/dashboard/team/invitations",
    "/dashboard/team/invitations/{invitation_id}/revoke",
    "/dashboard/team/members/{user_id}/role",
    "/dashboard/team/members/{user_id}/remove",
}


def test_every_route_declares_a_guard(app: FastAPI) -> None:
    unguarded = []
    for route in iter_routes(app):
        if getattr(route, "path", None) in FRAMEWORK_ROUTES:
            continue
        assert isinstance(route, APIRoute), f"unexpected route type at {route}"
        if route_guard(route) is None:
            unguarded.append(f"{sorted(route.methods or ())} {route.path}")
    assert not unguarded, f"routes without a guard: {unguarded}"


def test_only_credential_exchanges_health_and_pages_are_public(app: FastAPI) -> None:
    public = {
        route.path
        for route in iter_routes(app)
        if isinstance(route, APIRoute)
        and (guard := route_guard(route)) is not None
        and guard.requirement.public
    }
    assert public == PUBLIC_ROUTES


def test_the_walk_notices_a_route_without_a_guard(app: FastAPI) -> None:
    app.add_api_route("/v1/forgotten", lambda: {"data": "oops"})
    route = next(r for r in iter_routes(app) if getattr(r, "path", None) == "/v1/forgotten")
    assert isinstance(route, APIRoute)
    assert route_guard(route) is None


def _requirement(route: APIRoute) -> str:
    guard = route_guard(route)
    assert guard is not None, f"no guard on {route.path}"
    return guard.requirement.describe()


def test_key_management_requires_full_scope_and_audit_logs_admin(app: FastAPI) -> None:
    requirements = {
        (route.path, method): _requirement(route)
        for route in iter_routes(app)
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert requirements[("/v1/api-keys", "POST")] == "scope *"
    assert requirements[("/v1/api-keys/{key_id}", "DELETE")] == "scope *"
    assert requirements[("/v1/audit-logs", "GET")] == "scope org:read and role admin"
    assert requirements[("/v1/me", "GET")] == "any valid credential"
    assert requirements[("/v1/auth/sessions", "GET")] == (
        "any valid credential and a session credential"
    )


def test_metrics_are_guarded_by_the_metrics_switch_and_token(app: FastAPI) -> None:
    route = next(r for r in iter_routes(app) if getattr(r, "path", None) == "/metrics")
    assert isinstance(route, APIRoute)
    guard = route_guard(route)
    assert guard is not None
    assert not guard.requirement.public
    assert guard.requirement.describe() == "metrics enabled, and the metrics token if one is set"
