"""The root of the command tree: global options, login and logout, auth, serve, admin."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runtools.cli import admin, auth, login, sandbox, serve
from runtools.cli.context import Globals
from runtools.cli.output import EXIT_USAGE, fail

app = typer.Typer(
    name="runtools",
    help=(
        "RunTools: API keys, sessions and sandboxes, self-hosted.\n\n"
        "Sign in with `runtools login`; manage keys with `runtools auth keys …`. "
        "Start the service with `runtools serve`; bootstrap the first organization, user "
        "and key with `runtools admin …`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


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
) -> None:
    ctx.obj = Globals(api_url=api_url, api_key=api_key)


app.command("login")(login.login)
app.command("logout")(login.logout)
app.add_typer(auth.app, name="auth")
app.command("serve", help=serve.HELP)(serve.serve)
app.add_typer(admin.app, name="admin")
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    options = sys.argv[1:]
    if "--" in options:  # what follows is arguments (a command to run), not options
        options = options[: options.index("--")]
    if "--json" not in options:
        app()
        return
    # With --json, an error in the command line itself (an unknown option, a
    # missing argument) is JSON on stdout too, as every other error is.
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # the argument parser's errors: usage, exit 2
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        try:
            fail(message, code=getattr(exc, "exit_code", EXIT_USAGE), as_json=True)
        except typer.Exit as stop:
            sys.exit(stop.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
