"""Every route with an id, called across two organizations by every kind of credential.

The routes come from ``/openapi.json``: a route added later is in the matrix
without editing this file, as long as its path parameters name a kind of
object the ``Tenant`` below holds one of (``org_id``, ``key_id``, ...); a new
kind fails the matrix until a tenant holds one. Two organizations, each with
an admin and a member signed in, both holding a ``*`` key, and the admin a
key with nothing but the route's own scope; each calls every route with the
other organization's ids (all of them, and one at a time among its own):

- the answer is a 404, or the 403 the route's guard gives this credential
  whatever the id; either way the same answer as for an id nobody holds;
- nothing in the database changes;
- the refusal is in the caller's organization's audit log.

Routes for admins only are refused to members with their own organization's
ids (403, audited, nothing changes), also when the method is swapped for
another one, with or without a method-override header.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from sqlalchemy import select

from runtools.server import operator
from runtools.server.api.guards import requires
from runtools.server.domain.roles import role_permits
from runtools.server.domain.scopes import covers
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from runtools.server.store.models import AuditEvent, Base
from support.databases import database_under_test
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve

PASSWORD = "correct horse battery staple"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
OVERRIDE_HEADERS = ("X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method")
# Written by any request, whoever's: the refusals themselves (and the audit chain's head)
# and usage stamps.
UNWATCHED_TABLES = {"audit_events", "audit_chain_head", "auth_failures", "api_key_usage", "nodes"}
UNWATCHED_COLUMNS = {"last_used_at", "last_activity_at"}


@dataclass(frozen=True)
class Credential:
    name: str
    kind: str  # "session" or "api_key"
    role: str
    scopes: tuple[str, ...]
    headers: dict[str, str]

    def passes(self, requires: str) -> bool:
        """Does a route's guard (its ``x-requires``) let this credential through?"""
        if "a session credential" in requires and self.kind != "session":
            return False
        if "role admin" in requires and self.role != "admin":
            return False
        scope = re.match(r"scope (\S+)", requires)
        needed = scope.group(1).rstrip(",") if scope else None
        return needed is None or (covers(self.scopes, needed) and role_permits(self.role, needed))


@dataclass
class Tenant:
    """An organization, its people's credentials, and one object of each kind a path names."""

    name: str
    org_id: str
    admin_email: str
    ids: dict[str, str]
    credentials: dict[str, Credential]
    _narrow: dict[str, Credential] = field(default_factory=dict)

    def narrow_key(self, served: ServedApp, requires: str) -> Credential:
        """The admin's key holding the route's own scope and nothing else."""
        match = re.match(r"scope (\S+)", requires)
        scope = match.group(1).rstrip(",") if match and match.group(1) != "*" else "org:read"
        if scope not in self._narrow:
            issued, _org, _user = operator.create_key(
                served.runtime,
                org_name=self.name,
                email=self.admin_email,
                name=f"narrow {scope}",
                scopes=[scope],
                expires_in=None,
                is_test=False,
            )
            served.registry.add(issued.secret)
            self._narrow[scope] = Credential(
                "narrow key", "api_key", "admin", (scope,), {"X-API-Key": issued.secret}
            )
        return self._narrow[scope]

    def all_credentials(self, served: ServedApp, requires: str) -> list[Credential]:
        return [*self.credentials.values(), self.narrow_key(served, requires)]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    requires: str
    params: tuple[str, ...]
    query: dict[str, Any]
    body: dict[str, Any]  # keyword arguments of the request: json= or content=


@dataclass
class World:
    served: ServedApp
    http: httpx.Client
    tenants: tuple[Tenant, Tenant]

    @property
    def runtime(self) -> Runtime:
        return self.served.runtime


# -- the world -------------------------------------------------------------------


def _tenant(served: ServedApp, http: httpx.Client, name: str) -> Tenant:
    runtime = served.runtime
    org = operator.create_org(runtime, name)
    admin_email, member_email = f"admin@{name}.example", f"member@{name}.example"
    users = {}
    for email, role in ((admin_email, "admin"), (member_email, "member")):
        joined = operator.create_user(
            runtime, email, org_name=name, role=role, password=PASSWORD, display_name=None
        )
        users[role] = joined.user.id

    def key(email: str, key_name: str) -> tuple[str, str]:
        issued, _org, _user = operator.create_key(
            runtime,
            org_name=name,
            email=email,
            name=key_name,
            scopes=["*"],
            expires_in=None,
            is_test=False,
        )
        served.registry.add(issued.secret)
        return issued.secret, issued.view.id

    def session(email: str) -> str:
        response = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        tokens = response.json()["data"]
        served.registry.add(tokens["accessToken"])
        served.registry.add(tokens["refreshToken"])
        return str(tokens["accessToken"])

    admin_key, _ = key(admin_email, "admin key")
    member_key, _ = key(member_email, "member key")
    _, target_key_id = key(member_email, "a key to aim at")
    admin_session, member_session = session(admin_email), session(member_email)
    credentials = {
        "admin session": Credential(
            "admin session", "session", "admin", ("*",), _bearer(admin_session)
        ),
        "member session": Credential(
            "member session", "session", "member", ("*",), _bearer(member_session)
        ),
        "admin key": Credential("admin key", "api_key", "admin", ("*",), {"X-API-Key": admin_key}),
        "member key": Credential(
            "member key", "api_key", "member", ("*",), {"X-API-Key": member_key}
        ),
    }
    admin = credentials["admin key"].headers
    invitation = http.post(
        f"/v1/organizations/{org.id}/invitations",
        json={"email": f"invitee@{name}.example", "role": "member"},
        headers=admin,
    )
    assert invitation.status_code == 201, invitation.text
    served.registry.add(invitation.json()["data"]["token"])
    project = http.post("/v1/projects", json={"name": "matrix"}, headers=admin)
    assert project.status_code == 201, project.text
    sandbox = http.post(
        "/v1/sandboxes",
        json={"name": "matrix", "projectId": project.json()["data"]["id"]},
        headers=admin,
    )
    assert sandbox.status_code == 201, sandbox.text
    public_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    ssh_key = http.post(
        "/v1/ssh-keys",
        json={"name": "matrix", "publicKey": public_key},
        headers=credentials["member key"].headers,
    )
    assert ssh_key.status_code == 201, ssh_key.text
    sessions = http.get("/v1/auth/sessions", headers=credentials["member session"].headers)
    assert sessions.status_code == 200, sessions.text
    ids = {
        "org_id": org.id,
        "user_id": users["member"],
        "key_id": target_key_id,
        "invitation_id": invitation.json()["data"]["id"],
        "session_id": sessions.json()["data"][0]["id"],
        "sandbox": sandbox.json()["data"]["id"],
        "project_id": project.json()["data"]["id"],
        "ssh_key_id": ssh_key.json()["data"]["id"],
    }
    return Tenant(name, org.id, admin_email, ids, credentials)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, secret_registry: SecretRegistry
) -> Iterator[World]:
    if os.geteuid() != 0:
        pytest.skip("the matrix includes sandboxes, which need root (namespaces and cgroups)")
    home: Path = tmp_path_factory.mktemp("matrix") / "home"
    with database_under_test() as url:
        settings = Settings(home=home, database_url=url, rate_limits=False, _env_file=None)
        with serve(settings, secret_registry) as served:
            http = httpx.Client(base_url=served.url, timeout=60)
            try:
                acme, globex = _tenant(served, http, "acme"), _tenant(served, http, "globex")
                yield World(served, http, (acme, globex))
            finally:
                http.close()


# -- the routes, from the OpenAPI document ----------------------------------------


def _example(schema: dict[str, Any], name: str, components: dict[str, Any]) -> Any:
    """A plausible value of ``schema``: its example, its default, else one of its type."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        choices = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _example(
            {**choices[0], **{k: v for k, v in schema.items() if k != "anyOf"}}, name, components
        )
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return _example_object(schema, components)
    if kind == "array":
        return [_example(schema.get("items", {}), name, components)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    return "matrix@example.com" if "email" in name.lower() else "matrix"


def _example_object(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The required fields, and the optional ones whose schema names a value (else the first)."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    chosen = [
        key
        for key, value in properties.items()
        if key in required or _self_described(value, components)
    ] or list(properties)[:1]
    return {key: _example(properties[key], key, components) for key in chosen}


def _self_described(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        return any(_self_described(s, components) for s in schema["anyOf"]) or bool(
            schema.get("examples")
        )
    if schema.get("type") == "array":
        return _self_described(schema.get("items", {}), components)
    return bool(schema.get("examples") or "default" in schema or "enum" in schema)


def operations(spec: dict[str, Any]) -> list[Operation]:
    """Every operation whose path names an object."""
    components = spec.get("components", {}).get("schemas", {})
    found = []
    for path, methods in spec["paths"].items():
        params = tuple(re.findall(r"{(\w+)}", path))
        if not params:
            continue
        for method, op in methods.items():
            query = {
                p["name"]: _example(p["schema"], p["name"], components)
                for p in op.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            body: dict[str, Any] = {}
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body["json"] = _example(content["application/json"]["schema"], "", components)
            elif content:
                body["content"] = b"matrix\n"
                body["headers"] = {"Content-Type": next(iter(content))}
            found.append(
                Operation(
                    method.upper(),
                    path,
                    op["operationId"],
                    op.get("x-requires", ""),
                    params,
                    query,
                    body,
                )
            )
    return found


# -- what a call may and may not do -------------------------------------------------


def snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a refused call must leave alone."""
    runtime.flush()
    rows = {}
    with runtime.database.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in UNWATCHED_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in UNWATCHED_COLUMNS]
            rows[table.name] = sorted(
                (tuple(map(repr, row)) for row in session.execute(select(*columns))), key=repr
            )
    return rows


def made_up(value: str) -> str:
    """An id of the same shape as ``value`` that nobody holds."""
    head, sep, tail = value.rpartition("_") if "_" in value else value.rpartition("-")
    alphabet = (
        "abcdefghijklmnopqrstuvwxyz0123456789"
        if tail == tail.lower()
        else ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    )
    return head + sep + "".join(secrets.choice(alphabet) for _ in tail)


def call(
    world: World,
    op: Operation,
    ids: dict[str, str],
    credential: Credential,
    *,
    method: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    url = op.path.format(**ids)
    body = dict(op.body)
    headers = {**credential.headers, **body.pop("headers", {}), **(extra_headers or {})}
    return world.http.request(method or op.method, url, params=op.query, headers=headers, **body)


def answer(response: httpx.Response, ids: dict[str, str] | None = None) -> tuple[int, Any]:
    """Status, code and message, the ids ``ids`` holds (echoed by a 404) blanked out."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response.status_code, None
    message = str(error.get("message"))
    for value in (ids or {}).values():
        message = message.replace(value, "{id}")
    return response.status_code, (error.get("code"), message)


def unaudited(runtime: Runtime, responses: list[tuple[str, httpx.Response]]) -> list[str]:
    """The refusals among ``responses`` that left no event in the caller's audit log."""
    runtime.flush()
    wanted = {r.headers["x-request-id"]: (org_id, r) for org_id, r in responses}
    with runtime.database.session() as session:
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.request_id.in_(list(wanted)), AuditEvent.outcome == "failure"
            )
        ).all()
        audited = {(e.request_id, e.org_id) for e in events}
    return [
        f"{r.request.method} {r.url.path} -> {r.status_code}, not audited"
        for request_id, (org_id, r) in wanted.items()
        if (request_id, org_id) not in audited
    ]


# -- the properties ------------------------------------------------------------------


def cross_tenant_problems(world: World, spec: dict[str, Any]) -> list[str]:
    """Every way a route lets one organization reach, see or change another's objects."""
    problems: list[str] = []
    refusals: list[tuple[str, httpx.Response]] = []
    for caller, owner in itertools.permutations(world.tenants):
        for op in operations(spec):
            unknown = [p for p in op.params if p not in owner.ids]
            if unknown:
                problems.append(f"{op.operation_id}: no tenant object for {unknown}; add one")
                continue
            # The other org's ids throughout, then one at a time among the caller's own.
            aims = [{p: owner.ids[p] for p in op.params}]
            if len(op.params) > 1:
                aims += [
                    {p: (owner.ids[p] if p == foreign else caller.ids[p]) for p in op.params}
                    for foreign in op.params
                ]
            for ids, credential in itertools.product(
                aims, caller.all_credentials(world.served, op.requires)
            ):
                label = f"{op.operation_id} {ids} as {caller.name}'s {credential.name}"
                before = snapshot(world.runtime)
                response = call(world, op, ids, credential)
                if snapshot(world.runtime) != before:
                    problems.append(f"{label}: changed the database ({response.status_code})")
                expected = 404 if credential.passes(op.requires) else 403
                if response.status_code != expected:
                    problems.append(
                        f"{label}: {response.status_code}, not {expected}: {response.text[:200]}"
                    )
                    continue
                nobody = {p: (made_up(v) if v == owner.ids.get(p) else v) for p, v in ids.items()}
                other = answer(call(world, op, nobody, credential), nobody)
                if other != answer(response, ids):
                    problems.append(
                        f"{label}: {answer(response, ids)} but {other} for an id nobody holds"
                    )
                refusals.append((caller.org_id, response))
    return problems + unaudited(world.runtime, refusals)


def admin_only_problems(world: World, spec: dict[str, Any]) -> list[str]:
    """Every way a member gets through a route for admins, its method swapped or not."""
    problems: list[str] = []
    refusals: list[tuple[str, httpx.Response]] = []
    served = {(op.path, op.method) for op in operations(spec)}
    for tenant in world.tenants:
        members = [c for c in tenant.credentials.values() if c.role == "member"]
        for op, credential in itertools.product(operations(spec), members):
            if "role admin" not in op.requires:
                continue
            ids = {p: tenant.ids[p] for p in op.params}
            label = f"{op.operation_id} as {tenant.name}'s {credential.name}"
            before = snapshot(world.runtime)
            response = call(world, op, ids, credential)
            if response.status_code != 403:
                problems.append(f"{label}: {response.status_code}, not 403")
            refusals.append((tenant.org_id, response))
            for method in METHODS:
                if method == op.method:
                    continue
                plain = call(world, op, ids, credential, method=method)
                overridden = call(
                    world,
                    op,
                    ids,
                    credential,
                    method=method,
                    extra_headers={name: op.method for name in OVERRIDE_HEADERS},
                )
                if (op.path, method) not in served and plain.status_code != 405:
                    problems.append(f"{label} sent as {method}: {plain.status_code}, not 405")
                if answer(overridden) != answer(plain):
                    problems.append(f"{label} sent as {method}: a method override header counted")
            if snapshot(world.runtime) != before:
                problems.append(f"{label}: changed the database")
    return problems + unaudited(world.runtime, refusals)


def test_no_route_reaches_another_organizations_objects(world: World) -> None:
    spec = world.http.get("/openapi.json").json()
    assert len(operations(spec)) >= 20  # the document was read, not an empty one
    problems = cross_tenant_problems(world, spec)
    assert not problems, "\n".join(problems)


def test_members_are_refused_every_route_for_admins_whatever_the_method(world: World) -> None:
    spec = world.http.get("/openapi.json").json()
    assert any("role admin" in op.requires for op in operations(spec))
    problems = admin_only_problems(world, spec)
    assert not problems, "\n".join(problems)


def test_the_matrix_notices_a_new_route_that_leaks(world: World) -> None:
    """A route added without a tenant check fails the matrix with no edit to this file."""
    app: FastAPI = world.served.app

    def leak(request: Request, org_id: str, principal: Any = requires(scope="org:read")) -> Any:
        return {"data": {"id": org_id}}  # whoever's id it is

    app.add_api_route(
        "/v1/matrix-leak/{org_id}", leak, methods=["POST"], operation_id="matrix-leak"
    )
    app.openapi_schema = None
    try:
        spec = world.http.get("/openapi.json").json()
        problems = cross_tenant_problems(world, spec)
        assert any(p.startswith("matrix-leak") and "not 404" in p for p in problems), problems
        assert not [p for p in problems if not p.startswith("matrix-leak")], problems
    finally:
        app.router.routes[:] = [
            r for r in app.router.routes if getattr(r, "path", None) != "/v1/matrix-leak/{org_id}"
        ]
        app.openapi_schema = None
