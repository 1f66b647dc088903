"""The root of the command tree: ``runtools serve``, ``runtools admin …``."""

from __future__ import annotations

import typer

from runtools.cli import admin, sandbox, serve

app = typer.Typer(
    name="runtools",
    help=(
        "RunTools: API keys, sessions and sandboxes, self-hosted.\n\n"
        "Start the service with `runtools serve`; bootstrap the first organization, user "
        "and key with `runtools admin …`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
app.command("serve", help=serve.HELP)(serve.serve)
app.add_typer(admin.app, name="admin")
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:
    app()
