"""``runtools admin …``: operator commands working directly on the configured database.

They need no credential, which is the point: this is how the first
organization, user and key come to exist on a new deployment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtools.cli.confirm import YesFlag, confirm
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
        str,
        typer.Option(
            "--scopes",
            help='Comma-separated scopes; "*" is everything but auth:verify, named alone',
        ),
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

        # A service credential that checks others' credentials (POST /v1/auth/verify):
        runtools admin create-key --org platform --user tools@platform.example \\
            --name tool-hub --scopes auth:verify
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


sandboxes_app = typer.Typer(
    help="This node's sandboxes (RUNTOOLS_SANDBOX_NODE), as the operator.",
    no_args_is_help=True,
)
app.add_typer(sandboxes_app, name="sandboxes")


@sandboxes_app.command("drain")
def drain_sandboxes(yes: YesFlag = False, as_json: JsonFlag = False) -> None:
    """Destroy every sandbox of this node, with its processes and files.

    Stopping, upgrading or restarting `runtools serve` leaves sandboxes
    running, and the next start adopts them; this is how to end them all on
    purpose (before taking a host away, say). Their records become
    `destroyed`, audited as the system's act, and nothing of them is left:
    no process, cgroup, state or uid reservation. Run it as the user the
    service runs as (root), with the service's settings.

    Examples:

        runtools admin sandboxes drain

        runtools admin sandboxes drain --yes --json
    """
    import anyio

    settings = server_settings(as_json=as_json)
    confirm(
        f"Destroy every sandbox of node {settings.sandbox_node}, with its processes and files?",
        yes=yes,
        as_json=as_json,
    )
    with _runtime(as_json) as runtime:
        destroyed = anyio.run(runtime.sandbox_upkeep.drain)
    _report(
        as_json,
        {"node": settings.sandbox_node, "destroyed": destroyed},
        lambda: typer.echo(
            f"Destroyed {len(destroyed)} sandbox{'es' if len(destroyed) != 1 else ''} "
            f"of node {settings.sandbox_node}"
        ),
    )


@app.command("nodes")
def nodes(as_json: JsonFlag = False) -> None:
    """List the nodes serving sandboxes on this database: address, liveness, room.

    A node is live while its heartbeat is younger than
    RUNTOOLS_NODE_LOST_AFTER_SECONDS; a lost node's sandboxes were failed
    and their quota freed. On SQLite there is one node and no registry.

    Examples:

        runtools admin nodes

        runtools admin nodes --json | jq '.[] | select(.live | not) | .name'
    """
    import anyio

    with _runtime(as_json) as runtime:
        registry = runtime.node_registry
        listed = [] if registry is None else anyio.run(registry.listing)
    rows = [
        {
            "name": n.name,
            "url": n.url,
            "live": n.live,
            "sandboxes": n.sandboxes,
            "memoryPromisedMib": n.memory_promised_mib,
            "memoryBudgetMib": n.memory_budget_mib,
            "version": n.version,
            "heartbeatAt": n.heartbeat_at.isoformat(),
            "lostAt": None if n.lost_at is None else n.lost_at.isoformat(),
        }
        for n in listed
    ]
    if as_json:
        emit_json(rows)
        return
    if registry is None:
        typer.echo("One node on SQLite: sandboxes run where `runtools serve` runs.")
        return
    columns = ("NAME", "ADDRESS", "STATE", "SANDBOXES", "MEMORY MiB", "LAST HEARTBEAT")
    typer.echo("{:20} {:28} {:6} {:>9} {:>13}  {}".format(*columns))
    for r in rows:
        memory = f"{r['memoryPromisedMib']}/{r['memoryBudgetMib']}"
        state = "live" if r["live"] else "lost"
        typer.echo(
            f"{r['name']:20} {r['url']:28} {state:6} {r['sandboxes']:>9} {memory:>13}  "
            f"{r['heartbeatAt']}"
        )


templates_app = typer.Typer(
    help=(
        "Templates: root filesystems sandboxes start from, on this node. A sandbox's / is "
        "its template, read-only and shared by every sandbox of it, with the sandbox's own "
        "writable layer on top."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(templates_app, name="templates")


def _template_row(t: Any) -> dict[str, Any]:
    row: dict[str, Any] = t.model_dump(mode="json", by_alias=True)
    return row


@templates_app.command("import")
def import_template(
    name: Annotated[str, typer.Argument(help="Template name: a-z, 0-9, '.', '_', '-'")],
    rootfs: Annotated[
        Path,
        typer.Argument(
            help="A root filesystem tarball (.tar, .tar.gz, .tar.xz)", show_default=False
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a template of that name (none may use it)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import a root filesystem tarball as a template sandboxes can start from.

    A tarball as `docker export` or `debootstrap` makes. It is extracted
    into the service's state directory (templates/NAME) and only then put in
    place: a refused archive leaves nothing. Refused: absolute names, `..`,
    links pointing out of the root, device nodes outside /dev. The root
    filesystem must hold /bin/sh, /usr/bin/setpriv, /usr/bin/env and
    /usr/bin/sleep (a sandbox is entered with them). Import on every node
    that should offer the template.

    Examples:

        docker create --name py python:3.12-slim && docker export py -o python.tar

        runtools admin templates import python-3.12 python.tar

        sudo debootstrap bookworm rootfs && sudo tar -C rootfs -czf bookworm.tar.gz .

        runtools admin templates import debian-12 bookworm.tar.gz --replace --json

    Importing one named base-ubuntu makes it the template of that name
    (otherwise base-ubuntu is the host's).
    """
    with _runtime(as_json) as runtime:
        template = runtime.templates.import_template(name, rootfs, replace=replace)
    _report(
        as_json,
        _template_row(template),
        lambda: typer.echo(
            f"Imported template {template.name}: {template.description}, "
            f"{template.files} files, {template.size / 1024 / 1024:.1f} MiB"
        ),
    )


@templates_app.command("list")
def list_templates(as_json: JsonFlag = False) -> None:
    """List this node's templates, the default (the host's userland) first.

    Examples:

        runtools admin templates list

        runtools admin templates list --json | jq -r '.[].name'
    """
    with _runtime(as_json) as runtime:
        listed = runtime.templates.list_templates()
    if as_json:
        emit_json([_template_row(t) for t in listed])
        return
    typer.echo("{:32} {:9} {:>10}  {}".format("NAME", "KIND", "SIZE MiB", "DESCRIPTION"))
    for t in listed:
        names = ", ".join([t.name, *t.aliases])
        size = f"{t.size / 1024 / 1024:.1f}" if t.kind == "imported" else "-"
        typer.echo(f"{names:32} {t.kind:9} {size:>10}  {t.description}")


@templates_app.command("remove")
def remove_template(
    name: Annotated[str, typer.Argument(help="An imported template's name")],
    as_json: JsonFlag = False,
) -> None:
    """Remove an imported template no sandbox uses (destroy those first).

    The host's template cannot be removed.

    Examples:

        runtools admin templates remove python-3.12

        runtools admin templates remove debian-12 --json
    """
    with _runtime(as_json) as runtime:
        runtime.templates.remove(name)
    _report(
        as_json,
        {"name": name, "removed": True},
        lambda: typer.echo(f"Removed template {name}"),
    )


audit_app = typer.Typer(
    help=(
        "The audit log's hash chain: check that no event was altered, removed or "
        "inserted, and write signed exports an offline verifier can check."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Check the whole audit chain: exit 0 if it holds, 1 naming the first broken event.

    Each event's hash is recomputed from its stored fields and checked against
    the next event's prevHash, the sequence and the chain's head, so an event
    altered, removed or slipped in (even with the append-only triggers dropped)
    is found. It reads every event; on a large log it takes a while.

    Examples:

        runtools admin audit verify

        runtools admin audit verify --json    # {"ok": true, "events": 1204, ...}
    """
    from runtools.server import operator

    with _runtime(as_json) as runtime:
        report = operator.verify_audit_chain(runtime)
    payload = {
        "ok": report.broken is None,
        "events": report.events,
        "headSeq": report.head_seq,
        "headHash": report.head_hash,
        "brokenEventId": None if report.broken is None else report.broken.event_id,
        "brokenSeq": None if report.broken is None else report.broken.seq,
        "problem": None if report.broken is None else report.broken.problem,
    }
    if report.broken is not None:
        if as_json:
            emit_json(payload)
            raise typer.Exit(1)
        fail(
            f"the audit chain is broken at {report.broken.describe()} "
            f"({report.events} events before it verify)"
        )
    _report(
        as_json,
        payload,
        lambda: typer.echo(
            f"The audit chain holds: {report.events} events, head seq {report.head_seq} "
            f"({report.head_hash})"
        ),
    )


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="File to write (created mode 0600, replaced)")],
    as_json: JsonFlag = False,
) -> None:
    """Write the audit chain as signed JSON lines, for an offline verifier.

    Line 1 names the format and the signing key (Ed25519, derived from a secret
    the service keeps in its database: the same on every node); then one event
    per line, exactly the fields its hash covers, and its hash; the last line
    signs the SHA-256 of everything before it. The public key is printed; keep
    it apart from the export, and check with the verifier in docs/security.md.
    A broken chain is exported up to the break, and the command exits 1.

    Examples:

        runtools admin audit export --out audit-2026-12.jsonl

        runtools admin audit public-key     # the key alone, to give a verifier
    """
    from runtools.server import operator

    with _runtime(as_json) as runtime:
        summary, broken = operator.export_audit_chain(runtime, out)
    payload = {
        "path": str(out),
        "events": summary.events,
        "headSeq": summary.head_seq,
        "headHash": summary.head_hash,
        "publicKey": summary.public_key,
        "ok": broken is None,
        "problem": None if broken is None else broken.describe(),
    }
    if broken is not None:
        if as_json:
            emit_json(payload)
            raise typer.Exit(1)
        fail(
            f"exported {summary.events} events to {out}, up to where the chain is broken: "
            f"{broken.describe()}"
        )

    def human() -> None:
        typer.echo(f"Exported {summary.events} events to {out} (head seq {summary.head_seq})")
        typer.echo(f"Signed with public key {summary.public_key}")

    _report(as_json, payload, human)


@audit_app.command("public-key")
def audit_public_key(as_json: JsonFlag = False) -> None:
    """Print the public key audit exports are signed with (Ed25519, raw, base64).

    Examples:

        runtools admin audit public-key > audit-export.pub
    """
    with _runtime(as_json) as runtime:
        key = runtime.audit_chain.public_key()
    _report(as_json, {"publicKey": key}, lambda: typer.echo(key))
