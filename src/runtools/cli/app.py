"""The root of the command tree: global options, login and logout, auth, serve, admin."""

from __future__ import annotations

from typing import Annotated

import typer

from runtools._version import __version__
from runtools.cli import admin, auth, invite, login, orgs, projects, sandbox, serve, ssh_keys
from runtools.cli.context import Globals
from runtools.cli.root import RootGroup

app = typer.Typer(
    name="runtools",
    help=(
        "RunTools: API keys, sessions and sandboxes, self-hosted.\n\n"
        "Sign in with `runtools login`; manage keys with `runtools auth keys …`. "
        "Start the service with `runtools serve`; bootstrap the first organization, user "
        "and key with `runtools admin …`.\n\n"
        "The options below, and every command's `--json`, go before or after the "
        "command: `runtools auth status --api-url URL --json`."
    ),
    cls=RootGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"runtools {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            help="The server [default: RUNTOOLS_API_URL or http://127.0.0.1:8700]",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="An API key; wins over RUNTOOLS_API_KEY and the stored login",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    ctx.obj = Globals(api_url=api_url, api_key=api_key)


app.command("login")(login.login)
app.command("logout")(login.logout)
app.add_typer(auth.app, name="auth")
app.add_typer(orgs.app, name="org")
app.add_typer(invite.app, name="invite")
app.add_typer(projects.app, name="project")
app.add_typer(ssh_keys.app, name="ssh-key")
app.command("serve", help=serve.HELP)(serve.serve)
app.add_typer(admin.app, name="admin")
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    app()
