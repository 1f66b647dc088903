"""``runtools auth keys …``: create, list, inspect, change, rotate and revoke API keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from runtools import ApiKey, CreatedApiKey, KeyUsageDay
from runtools._types import NOT_GIVEN
from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.context import api_errors, client
from runtools.cli.output import EXIT_USAGE, emit_json, fail, fields, note, table, when

app = typer.Typer(
    help="Create, list, inspect, change, rotate and revoke API keys.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
AllowCidrOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-cidr", help="A network it works from, e.g. 203.0.113.0/24; repeat for more"
    ),
]
KeyId = Annotated[str, typer.Argument(help="The key's id (key_…)")]
ScopesOption = Annotated[
    str | None, typer.Option("--scopes", help='Comma-separated scopes, e.g. "sandbox:*,files:read"')
]
ScopeOption = Annotated[
    list[str] | None, typer.Option("--scope", help="One scope; repeat for more")
]
RateLimitOption = Annotated[
    int | None,
    typer.Option(
        "--rate-limit",
        min=1,
        help="The key's own limit in requests per minute (at most its plan's default)",
    ),
]


def _wire(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _scopes(scopes: str | None, scope: list[str] | None, *, as_json: bool) -> list[str] | None:
    if scopes is None and not scope:
        return None
    chosen = [s.strip() for s in (scopes or "").split(",") if s.strip()]
    chosen += [s.strip() for s in scope or [] if s.strip()]
    if not chosen:
        # `--scopes "$UNSET"` must not mean "every scope": that takes --scopes "*".
        fail(
            'empty --scopes: name the scopes, or pass --scopes "*" for every scope',
            code=EXIT_USAGE,
            as_json=as_json,
        )
    return chosen


def _expires(key: ApiKey) -> str:
    """When the key stops working: its expiry, or the end of its rotation grace if sooner."""
    ends = key.ends_at if key.status == "expiring" else key.expires_at
    if ends is not None and ends != key.expires_at:
        return f"{when(ends)} (rotated: grace ends)"
    return when(ends, empty="never")


def _revoked(key: ApiKey) -> str:
    if key.status == "expiring":  # revokedAt is in the future: the end of the grace
        return f"when the grace ends, {when(key.revoked_at)}"
    if key.revoked_at is not None and key.revoked_reason == "leaked":
        return f"{when(key.revoked_at)} (leaked: found in public by secret scanning)"
    if key.revoked_at is not None and key.revoked_reason:
        return f"{when(key.revoked_at)} ({key.revoked_reason})"
    return when(key.revoked_at)


def _org(key: ApiKey) -> str:
    """The key's organization, by name and id: what it acts for."""
    if key.org_id is None:  # a server that does not say
        return "-"
    return f"{key.org_name} ({key.org_id})" if key.org_name else key.org_id


def _show(key: ApiKey, week: list[KeyUsageDay] | None = None) -> None:
    used = [] if week is None else [("Last 7 days", _summary(week))]
    fields(
        [
            ("ID", key.id),
            ("Name", key.name),
            ("Prefix", f"{key.key_prefix}…"),
            ("Scopes", " ".join(key.scopes)),
            ("Status", key.status or "-"),
            ("Organization", _org(key)),
            ("Test key", "yes" if key.is_test else "no"),
            ("Rate limit", f"{key.rate_limit}/min" if key.rate_limit else "the plan's default"),
            ("From browsers", "allowed" if key.allow_browser else "refused"),
            ("Networks", " ".join(key.allowed_cidrs) or "any"),
            *([("Canary", "yes: every use is an alarm")] if key.is_canary else []),
            ("Project", key.project_id or "-"),
            ("Owner", key.owner_email or "-"),
            ("Created", when(key.created_at)),
            ("Expires", _expires(key)),
            ("Last used", when(key.last_used_at, empty="never")),
            ("Revoked", _revoked(key)),
            *used,
        ]
    )


def _summary(days: list[KeyUsageDay]) -> str:
    requests = sum(d.requests for d in days)
    invalid = sum(d.invalid for d in days)
    limited = sum(d.rate_limited for d in days)
    return f"{requests} requests, {invalid} refused as invalid, {limited} rate limited"


def _issued(created: CreatedApiKey, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(_wire(created))
        return
    # The key alone on stdout, so `KEY=$(runtools auth keys create ci)` works.
    typer.echo(created.key)
    note(
        f"{verb} key {created.name} ({created.id}) in organization {_org(created)}, "
        f"scopes {' '.join(created.scopes)}"
        + (f", expires {when(created.expires_at)}" if created.expires_at else "")
    )
    note(
        "warning: this is the only time the key is shown. Store it now in a secret "
        "manager or environment variable; it is not saved anywhere."
    )


@app.command("list")
def list_keys(
    ctx: typer.Context,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Every key in the organization (admins)")
    ] = False,
    limit: Annotated[int, typer.Option(help="Page size", min=1, max=100)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List your API keys (or, with --all, the organization's), newest first.

    Examples:

        runtools auth keys list

        runtools auth keys list --all --json
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        keys = list(rt.api_keys.list(limit=limit, all=all_keys))
    if as_json:
        emit_json({"data": [_wire(k) for k in keys]})
        return
    if not keys:
        note("No API keys.")
        return
    note(f"API keys of organization {_org(keys[0])}")
    table(
        ["ID", "NAME", "PREFIX", "SCOPES", "STATUS", "EXPIRES", "LAST USED"],
        [
            [
                k.id,
                k.name,
                f"{k.key_prefix}…",
                " ".join(k.scopes),
                k.status or "-",
                _expires(k),
                when(k.last_used_at, empty="never"),
            ]
            for k in keys
        ],
    )


@app.command("get")
def get_key(ctx: typer.Context, key_id: KeyId, as_json: JsonFlag = False) -> None:
    """Show one API key: its scopes, status, expiry, owner and last use (never its secret).

    A member sees their own keys, an admin every key of the organization;
    any other id is "not found" (exit 6).

    Examples:

        runtools auth keys get key_2bKx7TgQ

    Whether a rotated key is still in its grace period, for a script:

        runtools auth keys get key_2bKx7TgQ --json | jq -r .status     # active, expiring, …
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.api_keys.get(key_id)
        week = None if as_json else rt.api_keys.usage(key_id, days=7)
    emit_json(_wire(key)) if as_json else _show(key, week)


@app.command("usage")
def key_usage(
    ctx: typer.Context,
    key_id: KeyId,
    days: Annotated[
        int, typer.Option("--days", min=1, max=90, help="Days back, today included")
    ] = 30,
    as_json: JsonFlag = False,
) -> None:
    """A key's requests and refusals by day (UTC), oldest first.

    Requests are those the key authenticated (429s included); "invalid" are
    its uses refused as revoked, expired, of a removed owner, outside its
    networks or from a browser it refuses; "limited" are its 429s. Today's
    figures lag by up to RUNTOOLS_LAST_USED_FLUSH_SECONDS.

    Examples:

        runtools auth keys usage key_2bKx7TgQ

        runtools auth keys usage key_2bKx7TgQ --days 7 --json | jq '[.[].requests] | add'
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        used = rt.api_keys.usage(key_id, days=days)
    if as_json:
        emit_json([_wire(d) for d in used])
        return
    typer.echo(f"{'DAY':10}  {'REQUESTS':>9}  {'INVALID':>8}  {'LIMITED':>8}  LAST ADDRESS")
    for d in used:
        day = d.day.isoformat() if d.day else "-"
        typer.echo(
            f"{day:10}  {d.requests:>9}  {d.invalid:>8}  {d.rate_limited:>8}  "
            f"{d.last_address or '-'}"
        )
    typer.echo(f"In all: {_summary(used)}")


@app.command("create")
def create_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name to tell the key apart")],
    scopes: ScopesOption = None,
    scope: ScopeOption = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime such as 30d, 90d, 12h or 1y")
    ] = None,
    test: Annotated[bool, typer.Option("--test", help="Mint an rt_test_ key")] = False,
    project: Annotated[
        str | None, typer.Option("--project", help="Project id (UUID) to attach it to")
    ] = None,
    rate_limit: RateLimitOption = None,
    allow_browser: Annotated[
        bool,
        typer.Option("--allow-browser", help="Accept it from browsers (Origin, Sec-Fetch-Site)"),
    ] = False,
    allow_cidr: AllowCidrOption = None,
    canary: Annotated[
        bool,
        typer.Option("--canary", help="A honeytoken: never works, every use is an alarm"),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once.

    The key goes to stdout alone (details and a reminder to stderr); it is
    never written to disk. Without scopes the key gets "*" (everything you
    can do yourself); without --rate-limit, its organization's plan sets
    its requests per minute. A key is refused from browsers unless made
    with --allow-browser, and works from anywhere unless given networks
    with --allow-cidr. A --canary key is bait: plant it where only a thief
    would look; it never authenticates, and each use is a high-severity
    audit event (api_key.canary_used) naming the address it came from.

    Examples:

        runtools auth keys create "ci-production" --scopes "*"

        runtools auth keys create ci --scope sandbox:read --scope sandbox:exec --expires-in 90d

        KEY=$(runtools auth keys create deploy --scopes "sandbox:*" --test --rate-limit 10)

        runtools auth keys create office --allow-cidr 203.0.113.0/24 --allow-cidr 2001:db8::/32

        runtools auth keys create "aws-backup-creds" --canary
    """
    chosen = _scopes(scopes, scope, as_json=as_json)
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        created = rt.api_keys.create(
            name,
            scopes=chosen,
            expires_in=expires_in,
            is_test=test or None,
            project_id=project,
            rate_limit=rate_limit,
            allow_browser=allow_browser or None,
            allowed_cidrs=allow_cidr or None,
            is_canary=canary or None,
        )
    _issued(created, as_json, "Created")


@app.command("update")
def update_key(
    ctx: typer.Context,
    key_id: KeyId,
    name: Annotated[str | None, typer.Option("--name", help="New name")] = None,
    scopes: ScopesOption = None,
    scope: ScopeOption = None,
    project: Annotated[str | None, typer.Option("--project", help="Attach to a project")] = None,
    no_project: Annotated[
        bool, typer.Option("--no-project", help="Detach from its project")
    ] = False,
    rate_limit: RateLimitOption = None,
    plan_rate_limit: Annotated[
        bool,
        typer.Option(
            "--plan-rate-limit", help="Drop the key's own limit: its plan's default applies"
        ),
    ] = False,
    browser: Annotated[
        bool | None,
        typer.Option(
            "--allow-browser/--refuse-browser", help="Accept it from browsers, or refuse them"
        ),
    ] = None,
    allow_cidr: AllowCidrOption = None,
    any_address: Annotated[
        bool, typer.Option("--any-address", help="Drop its networks: it works from anywhere")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Rename a key, change its scopes (never beyond your own), project or rate limit.

    A new rate limit applies from the key's next request; the requests
    already counted this minute still count.

    Examples:

        runtools auth keys update key_2bKx7TgQ --name "ci-staging"

        runtools auth keys update key_2bKx7TgQ --scope sandbox:read --no-project

        runtools auth keys update key_2bKx7TgQ --rate-limit 30

        runtools auth keys update key_2bKx7TgQ --allow-cidr 10.0.0.0/8 --refuse-browser
    """
    chosen = _scopes(scopes, scope, as_json=as_json)
    if project is not None and no_project:
        fail("--project and --no-project contradict each other", code=EXIT_USAGE, as_json=as_json)
    if rate_limit is not None and plan_rate_limit:
        fail(
            "--rate-limit and --plan-rate-limit contradict each other",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    if allow_cidr and any_address:
        fail(
            "--allow-cidr and --any-address contradict each other",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    changes = (name, chosen, project, rate_limit, browser, allow_cidr)
    if all(c is None for c in changes) and not (no_project or plan_rate_limit or any_address):
        fail(
            "nothing to change: give --name, --scopes, --project, --no-project, "
            "--rate-limit, --plan-rate-limit, --allow-browser, --refuse-browser, "
            "--allow-cidr or --any-address",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.api_keys.update(
            key_id,
            name=name if name is not None else NOT_GIVEN,
            scopes=chosen if chosen is not None else NOT_GIVEN,
            project_id=None if no_project else (project if project is not None else NOT_GIVEN),
            rate_limit=None
            if plan_rate_limit
            else (rate_limit if rate_limit is not None else NOT_GIVEN),
            allow_browser=browser if browser is not None else NOT_GIVEN,
            allowed_cidrs=None if any_address else (allow_cidr or NOT_GIVEN),
        )
    emit_json(_wire(key)) if as_json else _show(key)


@app.command("revoke")
def revoke_key(
    ctx: typer.Context, key_id: KeyId, yes: YesFlag = False, as_json: JsonFlag = False
) -> None:
    """Revoke a key now: the next request made with it fails. This cannot be undone.

    It then shows what the key did in the last 30 days (its audited acts,
    refusals and source addresses), to judge what a leaked key touched.
    On a terminal it asks first; --yes skips the question (scripts, whose
    stdin is not a terminal, are never asked). Revoking a revoked key
    changes nothing and succeeds.

    Examples:

        runtools auth keys revoke key_2bKx7TgQ

        runtools auth keys revoke key_2bKx7TgQ --yes --json

        runtools auth keys list --json | jq -r '.data[] | select(.name == "ci") | .id' \\
            | xargs -n1 runtools auth keys revoke
    """
    confirm(
        f"Revoke key {key_id}? Every request made with it fails from now on.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.api_keys.revoke(key_id)
    if as_json:
        emit_json(_wire(key))
        return
    typer.echo(f"Revoked key {key.name} ({key.id}).")
    radius = key.blast_radius
    if radius is None:
        return
    if not radius.events:
        typer.echo("In the last 30 days it did nothing the audit log records.")
        return
    refused = f", {radius.refusals} of them refused" if radius.refusals else ""
    typer.echo(
        f"In the last 30 days it did {radius.events} audited act"
        f"{'s' if radius.events != 1 else ''}{refused}, on {radius.targets} "
        f"target{'s' if radius.targets != 1 else ''}:"
    )
    for done in radius.actions:
        typer.echo(f"  {done.count:>6}  {done.action}")
    if radius.addresses:
        typer.echo(f"From: {', '.join(radius.addresses)}")
    typer.echo("Each is in the organization's audit log (GET /v1/audit-logs).")


@app.command("rotate")
def rotate_key(
    ctx: typer.Context,
    key_id: KeyId,
    name: Annotated[str | None, typer.Option("--name", help="Name of the new key")] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime of the new key, e.g. 90d")
    ] = None,
    grace_period: Annotated[
        str | None,
        typer.Option("--grace-period", help="Keep the old key working this long: 1h, 24h…"),
    ] = None,
    yes: YesFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Replace a key with a new one and print the new key once.

    The old key stops working now, or when the grace period ends, so a
    deploy can switch over without downtime. Without a grace period it asks
    first on a terminal (--yes skips the question). The new key keeps the
    old one's scopes, project and rate limit.

    Examples:

        runtools auth keys rotate key_2bKx7TgQ --name "ci-production-2"

        runtools auth keys rotate key_2bKx7TgQ --grace-period 1h --json

        NEW_KEY=$(runtools auth keys rotate key_2bKx7TgQ --grace-period 24h)
    """
    if grace_period in (None, "0"):
        confirm(
            f"Rotate key {key_id}? The old key stops working now "
            "(--grace-period 1h keeps it working while you deploy the new one).",
            yes=yes,
            as_json=as_json,
        )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        rotated = rt.api_keys.rotate(
            key_id, name=name, expires_in=expires_in, grace_period=grace_period
        )
    _issued(rotated, as_json, "Rotated to")
