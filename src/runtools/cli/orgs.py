"""``runtools org …``: your organizations, their members, and invitations.

Everything acts on the organization of the credential in effect (the
stored login's, or the key's); ``runtools org switch`` moves a signed-in
session to another. Members are named by email on the command line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from runtools import Member, RunTools
from runtools.cli import auth
from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.context import api_errors, client
from runtools.cli.output import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    emit_json,
    fail,
    fields,
    note,
    table,
    when,
)
from runtools.resources.organizations import KEEP

app = typer.Typer(
    help="Your organizations, their members and roles, and invitations.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
Email = Annotated[str, typer.Argument(help="The member's email address")]
RoleName = Literal["admin", "member"]


def _wire(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _member(rt: RunTools, email: str, *, as_json: bool) -> Member:
    wanted = email.strip().lower()
    for member in rt.organizations.members():
        if (member.email or "").lower() == wanted:
            return member
    fail(f"no member {email} in this organization", code=EXIT_NOT_FOUND, as_json=as_json)


@app.command("list")
def list_orgs(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the organizations you belong to, with your role; * marks the current one.

    Examples:

        runtools org list

        runtools org list --json
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        orgs = rt.organizations.list()
    if as_json:
        emit_json({"data": [_wire(o) for o in orgs]})
        return
    table(
        ["", "ID", "NAME", "ROLE", "JOINED"],
        [
            ["*" if o.current else "", o.id, o.name or "-", o.role or "-", when(o.joined_at)]
            for o in orgs
        ],
    )


@app.command("create")
def create_org(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name no other organization has")],
    as_json: JsonFlag = False,
) -> None:
    """Create an organization with you as its admin (needs a signed-in session).

    You stay in the current organization; `runtools org switch NAME` moves there.

    Examples:

        runtools org create "acme labs"

        runtools org create newco && runtools org switch newco
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        org = rt.organizations.create(name)
    if as_json:
        emit_json(_wire(org))
        return
    typer.echo(f"Created organization {org.name} ({org.id}); you are its admin.")
    note(f"Switch to it with: runtools org switch {org.name}")


@app.command("rename")
def rename_org(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The organization's new name")],
    as_json: JsonFlag = False,
) -> None:
    """Rename the current organization (admins).

    Examples:

        runtools org rename "acme labs"
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        org = rt.organizations.rename(name)
    if as_json:
        emit_json(_wire(org))
        return
    typer.echo(f"Renamed organization {org.id} to {org.name}.")


@app.command("policy")
def key_policy(
    ctx: typer.Context,
    max_key_lifetime: Annotated[
        str | None,
        typer.Option(
            "--max-key-lifetime",
            help='The longest a new or rotated key may live (90d, 1y); "none" clears it',
        ),
    ] = None,
    require_expiry: Annotated[
        bool | None,
        typer.Option(
            "--require-expiry/--no-require-expiry", help="Every new or rotated key must expire"
        ),
    ] = None,
    revoke_unused_after: Annotated[
        str | None,
        typer.Option(
            "--revoke-unused-after",
            help='Revoke keys unused for this many days (e.g. 90); "none" turns it off',
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the current organization's key policy, or change it (admins).

    Keys made or rotated beyond it are refused (403, saying until when);
    keys that exist keep their expiry. With --revoke-unused-after, any key of
    the organization unused for that many days is revoked at the next hourly
    check (revokedReason "unused"). Without options it is shown.

    Examples:

        runtools org policy

        runtools org policy --max-key-lifetime 90d --require-expiry

        runtools org policy --max-key-lifetime none --json

        runtools org policy --revoke-unused-after 90
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        if max_key_lifetime is None and require_expiry is None and revoke_unused_after is None:
            policy = rt.organizations.policy()
        else:
            lifetime: Any = KEEP
            if max_key_lifetime is not None:
                lifetime = None if max_key_lifetime.lower() == "none" else max_key_lifetime
            unused: Any = KEEP
            if revoke_unused_after is not None:
                unused = _days(revoke_unused_after, as_json=as_json)
            policy = rt.organizations.set_policy(
                max_key_lifetime=lifetime,
                require_key_expiry=require_expiry,
                revoke_unused_after_days=unused,
            )
    if as_json:
        emit_json(_wire(policy))
        return
    fields(
        [
            ("Organization", policy.org_id),
            ("Longest key lifetime", policy.max_key_lifetime or "no limit"),
            ("Keys must expire", "yes" if policy.require_key_expiry else "no"),
            (
                "Unused keys revoked after",
                f"{policy.revoke_unused_after_days} days"
                if policy.revoke_unused_after_days
                else "never",
            ),
        ]
    )


def _days(text: str, *, as_json: bool) -> int | None:
    if text.lower() == "none":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        fail(
            f"--revoke-unused-after: {text!r} is not a number of days from 1 to 3650, or none",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    return int(text)


@app.command("switch")
def switch_org(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="The organization's name, e.g. acme")],
    as_json: JsonFlag = False,
) -> None:
    """Move the stored session to another of your organizations.

    The same as `runtools auth switch-org`: the session ends and one in ORG
    replaces it in the stored login. Keys belong to one organization and
    cannot switch.

    Examples:

        runtools org switch acme

        runtools org switch globex --json
    """
    auth.switch_org(ctx, org, as_json=as_json)


@app.command("members")
def list_members(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the current organization's members and their roles.

    Examples:

        runtools org members

        runtools org members --json | jq -r '.data[] | select(.role == "admin") | .email'
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        members = list(rt.organizations.members())
    if as_json:
        emit_json({"data": [_wire(m) for m in members]})
        return
    table(
        ["USER ID", "EMAIL", "NAME", "ROLE", "JOINED"],
        [
            [m.user_id, m.email or "-", m.display_name or "-", m.role or "-", when(m.joined_at)]
            for m in members
        ],
    )


@app.command("role")
def change_role(
    ctx: typer.Context,
    email: Email,
    role: Annotated[RoleName, typer.Argument(help="admin or member")],
    as_json: JsonFlag = False,
) -> None:
    """Make a member an admin, or an admin a member (admins).

    The change reaches their sessions and keys on their next request. The
    last admin cannot be demoted, and nobody promotes themselves.

    Examples:

        runtools org role bob@example.com admin

        runtools org role ada@example.com member
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        member = rt.organizations.set_role(_member(rt, email, as_json=as_json).user_id, role)
    if as_json:
        emit_json(_wire(member))
        return
    typer.echo(f"{member.email} is now {member.role}.")


@app.command("remove")
def remove_member(
    ctx: typer.Context, email: Email, yes: YesFlag = False, as_json: JsonFlag = False
) -> None:
    """Remove someone from the current organization (admins).

    Their sessions in it end and their keys stop working at once (status
    owner_removed); their sandboxes stay. On a terminal it asks first
    (--yes skips the question).

    Examples:

        runtools org remove bob@example.com

        runtools org remove bob@example.com --yes --json
    """
    confirm(
        f"Remove {email}? Their sessions end and their keys stop working.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        removed = rt.organizations.remove_member(_member(rt, email, as_json=as_json).user_id)
    if as_json:
        emit_json(_wire(removed))
        return
    typer.echo(f"Removed {removed.email} ({removed.role}).")


@app.command("leave")
def leave_org(ctx: typer.Context, yes: YesFlag = False, as_json: JsonFlag = False) -> None:
    """Leave the current organization: your sessions and keys in it stop working.

    The last admin cannot leave: make someone else an admin first.

    Examples:

        runtools org leave

        runtools org leave --yes
    """
    confirm(
        "Leave this organization? Your sessions and keys in it stop working.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        left = rt.organizations.leave()
    if as_json:
        emit_json(_wire(left))
        return
    typer.echo("You left the organization. Sign in to another with `runtools login --org NAME`.")


@app.command("invite")
def invite(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to invite")],
    role: Annotated[RoleName, typer.Option("--role", help="admin or member")] = "member",
    as_json: JsonFlag = False,
) -> None:
    """Invite someone to the current organization (admins) and print the token once.

    No email is sent: give the token to the person yourself. Only the account
    with EMAIL can use it, within 7 days, once: `runtools invite accept TOKEN`
    when signed in, or sign up with it. The token goes to stdout alone.

    Examples:

        runtools org invite bob@example.com --role member

        TOKEN=$(runtools org invite cy@example.com --role admin)
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        issued = rt.invitations.create(email, role=role)
    if as_json:
        emit_json(_wire(issued))
        return
    typer.echo(issued.token)
    note(f"Invited {issued.email} as {issued.role} ({issued.id}), until {when(issued.expires_at)}.")
    note(
        "warning: this is the only time the token is shown. Send it to them; "
        "they run `runtools invite accept TOKEN`."
    )


@app.command("invitations")
def list_invitations(
    ctx: typer.Context,
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="Revoke this invitation (its id, inv_…)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the current organization's invitations (admins), or revoke one.

    Examples:

        runtools org invitations

        runtools org invitations --revoke inv_2bKx7TgQ
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        if revoke is not None:
            revoked = rt.invitations.revoke(revoke)
        else:
            invitations = list(rt.invitations.list())
    if revoke is not None:
        if as_json:
            emit_json(_wire(revoked))
        else:
            typer.echo(f"Revoked the invitation of {revoked.email} ({revoked.id}).")
        return
    if as_json:
        emit_json({"data": [_wire(i) for i in invitations]})
        return
    if not invitations:
        note("No invitations.")
        return
    table(
        ["ID", "EMAIL", "ROLE", "STATUS", "EXPIRES"],
        [
            [i.id, i.email or "-", i.role or "-", i.status or "-", when(i.expires_at)]
            for i in invitations
        ],
    )


def show_joined(org: Any, as_json: bool) -> None:
    if as_json:
        emit_json(_wire(org))
        return
    fields([("Organization", f"{org.name} ({org.id})"), ("Role", org.role or "-")])
    note(f"Switch to it with: runtools org switch {org.name}")
