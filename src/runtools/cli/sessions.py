"""``runtools auth sessions …``: your signed-in sessions, and ending them."""

from __future__ import annotations

from typing import Annotated

import typer

from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.context import api_errors, client
from runtools.cli.output import EXIT_USAGE, emit_json, fail, note, table, when

app = typer.Typer(
    help="List your signed-in sessions and end them (needs a session, not an API key).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]


@app.command("list")
def list_sessions(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List your live sessions in every organization; * marks this one.

    Examples:

        runtools auth sessions list

        runtools auth sessions list --json
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        sessions = list(rt.sessions.list())
    if as_json:
        emit_json({"data": [s.model_dump(mode="json", by_alias=True) for s in sessions]})
        return
    if not sessions:
        note("No sessions.")
        return
    table(
        ["", "ID", "CLIENT", "ORGANIZATION", "IP", "LAST USED", "EXPIRES"],
        [
            [
                "*" if s.current else "",
                s.id,
                s.client_name or "-",
                (s.org.name or s.org.id) if s.org else "-",
                s.ip or "-",
                when(s.last_used_at),
                when(s.expires_at),
            ]
            for s in sessions
        ],
    )


@app.command("revoke")
def revoke_session(
    ctx: typer.Context,
    session_id: Annotated[
        str | None, typer.Argument(help="The session's id (ses_…)", show_default=False)
    ] = None,
    others: Annotated[
        bool, typer.Option("--others", help="End every session except this one")
    ] = False,
    yes: YesFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """End a session (a lost laptop's, say), or with --others every session but this one.

    Its refresh token fails at once, its access tokens on their next
    request; whoever used it must sign in again. On a terminal it asks
    first (--yes skips the question). Find ids with `runtools auth sessions list`.

    Examples:

        runtools auth sessions revoke ses_5fQe2WbK

        runtools auth sessions revoke --others

        runtools auth sessions revoke --others --yes --json
    """
    if (session_id is None) == (not others):
        fail("give a SESSION_ID or --others (not both)", code=EXIT_USAGE, as_json=as_json)
    confirm(
        "End every session of yours except this one?"
        if others
        else f"End session {session_id}? Whoever uses it must sign in again.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        if others:
            count = rt.sessions.revoke_others()
        else:
            assert session_id is not None
            rt.sessions.revoke(session_id)
            count = 1
    if as_json:
        emit_json({"revoked": count})
    else:
        typer.echo(f"Ended {count} session{'s' if count != 1 else ''}.")
