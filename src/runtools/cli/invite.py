"""``runtools invite accept TOKEN``: join the organization that invited you."""

from __future__ import annotations

from typing import Annotated

import typer

from runtools.cli.context import api_errors, client
from runtools.cli.orgs import show_joined

app = typer.Typer(
    help="Accept an invitation to an organization.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("accept")
def accept(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The invitation's token (rt_inv_…)")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout")
    ] = False,
) -> None:
    """Accept an invitation with your signed-in session (`runtools login` first).

    The invitation names an email address: only that account can accept
    it. An unknown, used, expired or revoked token, or one meant for someone
    else, is refused alike (exit 6).

    Examples:

        runtools invite accept rt_inv_Q2hhbmdlIG1lIQ

        runtools invite accept "$TOKEN" && runtools org switch acme
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        joined = rt.invitations.accept(token)
    show_joined(joined, as_json)
