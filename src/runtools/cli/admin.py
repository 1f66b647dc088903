"""``runtools admin …``: operator commands working directly on the configured database.

They need no credential, which is the point: this is how the first
organization, user and key come to exist on a new deployment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtools.cli.output import EXIT_USAGE, emit_json, fail
from runtools.cli.server_env import server_settings, unreachable

if TYPE_CHECKING:
    from runtools.server.runtime import Runtime

app = typer.Typer(
    help=(
        "Operator commands on the configured database (RUNTOOLS_HOME or "
        "RUNTOOLS_DATABASE_URL). No credential needed: run them where the service runs."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]


@contextmanager
def _runtime(as_json: bool) -> Iterator[Runtime]:
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from runtools.server.domain.errors import ServiceError
        from runtools.server.runtime import build_runtime
    except ImportError as exc:
        fail(
            f"the server is not installed ({exc.name}); pip install 'runtools-platform[server]'",
            as_json=as_json,
        )
    settings = server_settings(as_json=as_json)
    try:
        runtime = build_runtime(settings)
    except (SQLAlchemyError, OSError) as exc:
        unreachable(exc, as_json=as_json)
    try:
        yield runtime
    except ServiceError as exc:
        fail(exc.message, as_json=as_json)
    finally:
        runtime.close()


def _report(as_json: bool, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        emit_json(payload)
    else:
        human()


@app.command("create-org")
def create_org(
    name: Annotated[str, typer.Argument(help="Organization name (unique)")],
    as_json: JsonFlag = False,
) -> None:
    """Create an organization (names are unique, 1-100 characters), on the free plan.

    Examples:

        runtools admin create-org acme

    A new deployment from nothing: an organization, its first admin, a key:

        runtools admin create-org acme

        runtools admin create-user ada@example.com --org acme --role admin

        runtools admin create-key --org acme --user ada@example.com --name bootstrap

        ORG_ID=$(runtools admin create-org globex --json | jq -r .id)
    """
    from runtools.server import operator

    with _runtime(as_json) as runtime:
        org = operator.create_org(runtime, name)
    _report(
        as_json,
        {"id": org.id, "name": org.name, "createdAt": org.created_at.isoformat()},
        lambda: typer.echo(f"Created organization {org.name} ({org.id})"),
    )


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Argument(help="The user's email address")],
    org: Annotated[str, typer.Option("--org", help="Organization to join (must exist)")],
    role: Annotated[str, typer.Option(help="admin or member")] = "member",
    display_name: Annotated[str | None, typer.Option(help="Name shown to others")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a sign-in password from stdin")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user in an organization (or add an existing user to another one).

    Examples:

        runtools admin create-user ada@example.com --org acme --role admin

        printf '%s' "$PASSWORD" | runtools admin create-user bob@example.com \\
            --org acme --password-stdin
    """
    from runtools.server import operator

    if role not in {"admin", "member"}:
        fail(f"unknown role {role!r}: use admin or member", code=2, as_json=as_json)
    password = None
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            fail("--password-stdin given but stdin was empty", code=EXIT_USAGE, as_json=as_json)
    with _runtime(as_json) as runtime:
        result = operator.create_user(
            runtime, email, org_name=org, role=role, password=password, display_name=display_name
        )
    verb = "Created user" if result.created else "Added existing user"
    _report(
        as_json,
        {
            "id": result.user.id,
            "email": result.user.email,
            "org": {"id": result.org.id, "name": result.org.name},
            "role": result.role,
            "created": result.created,
        },
        lambda: typer.echo(f"{verb} {result.user.email} in {result.org.name} as {result.role}"),
    )


@app.command("set-password")
def set_password(
    email: Annotated[str, typer.Argument(help="The user's email address")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (required)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Give a sign-in password to a user who has none, so they can `runtools login`.

    A user created without --password-stdin (like the first admin of a
    bootstrap) cannot sign in until they have one. A user who has a password
    changes it themselves; this command never replaces one.

    Examples:

        printf '%s' "$PASSWORD" | runtools admin set-password ada@example.com --password-stdin

        runtools admin set-password ada@example.com --password-stdin < password.txt
    """
    from runtools.server import operator

    if not password_stdin:
        fail("give the password on stdin with --password-stdin", code=EXIT_USAGE, as_json=as_json)
    password = sys.stdin.read().rstrip("\r\n")
    if not password:
        fail("--password-stdin given but stdin was empty", code=EXIT_USAGE, as_json=as_json)
    with _runtime(as_json) as runtime:
        user = operator.set_first_password(runtime, email, password)
    _report(
        as_json,
        {"id": user.id, "email": user.email, "passwordSet": True},
        lambda: typer.echo(f"{user.email} can now sign in (runtools login)"),
    )


@app.command("create-key")
def create_key(
    org: Annotated[str, typer.Option("--org", help="The key's organization")],
    user: Annotated[str, typer.Option("--user", help="Email of the key's owner (a member)")],
    name: Annotated[str, typer.Option("--name", help="A name to tell the key apart")],
    scopes: Annotated[
        str, typer.Option("--scopes", help='Comma-separated scopes; "*" is everything')
    ] = "*",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime such as 30d, 12h, 2w or 1y")
    ] = None,
    test: Annotated[bool, typer.Option("--test", help="Mint an rt_test_ key")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Mint an API key for a member and print it once.

    The key is shown here and never again: store it in a secret manager.

    Examples:

        runtools admin create-key --org acme --user ada@example.com --name bootstrap

        runtools admin create-key --org acme --user ci@example.com --name ci \\
            --scopes "sandbox:*" --expires-in 90d --json
    """
    from runtools.server import operator

    scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
    with _runtime(as_json) as runtime:
        issued, org_row, owner = operator.create_key(
            runtime,
            org_name=org,
            email=user,
            name=name,
            scopes=scope_list,
            expires_in=expires_in,
            is_test=test,
        )
    view = issued.view

    def human() -> None:
        typer.echo(issued.secret)
        typer.echo(
            f"Created key {view.name} ({view.id}) for {owner.email} in {org_row.name}, "
            f"scopes {' '.join(view.scopes)}"
            + (f", expires {view.expires_at.isoformat()}" if view.expires_at else ""),
            err=True,
        )
        typer.echo(issued.message, err=True)

    _report(
        as_json,
        {
            "id": view.id,
            "key": issued.secret,
            "name": view.name,
            "keyPrefix": view.key_prefix,
            "scopes": view.scopes,
            "expiresAt": view.expires_at.isoformat() if view.expires_at else None,
            "isTest": view.is_test,
            "org": {"id": org_row.id, "name": org_row.name},
            "user": {"id": owner.id, "email": owner.email},
            "message": issued.message,
        },
        human,
    )


@app.command("rotate-signing-key")
def rotate_signing_key(as_json: JsonFlag = False) -> None:
    """Start signing access tokens with a new key.

    The old key keeps verifying the tokens it signed until they expire, so
    nobody is signed out. Running services start signing with the new key
    within 30 seconds, and accept tokens signed with it at once.

    Examples:

        runtools admin rotate-signing-key

        runtools admin rotate-signing-key --json     # {"kid": "…"}
    """
    with _runtime(as_json) as runtime:
        kid = runtime.keyring.rotate()
    _report(
        as_json,
        {"kid": kid},
        lambda: typer.echo(f"Signing access tokens with new key {kid}"),
    )


@app.command("set-plan")
def set_plan(
    org: Annotated[str, typer.Argument(help="Organization name")],
    plan: Annotated[str, typer.Argument(help="free, pro or enterprise")],
    as_json: JsonFlag = False,
) -> None:
    """Set an organization's plan, which sets its keys' default rate limits.

    free: 60, pro: 300, enterprise: 1000 requests per minute per key
    (rt_test_ keys: 20, 60, 200). A key's own rateLimit may only be lower.
    It applies from each key's next request; on SQLite a running server
    sees it within 30 seconds.

    Examples:

        runtools admin set-plan acme pro

        runtools admin set-plan acme enterprise --json

    Back to the default; keys' own limits above 60 are capped at 60:

        runtools admin set-plan acme free
    """
    from runtools.server import operator

    with _runtime(as_json) as runtime:
        row = operator.set_plan(runtime, org, plan)
    _report(
        as_json,
        {"id": row.id, "name": row.name, "plan": row.plan},
        lambda: typer.echo(f"Organization {row.name} is now on the {row.plan} plan"),
    )
