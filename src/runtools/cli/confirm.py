"""Asking before a command that cannot be undone: on a terminal only, skipped with ``--yes``.

Scripts keep working: when stdin is not a terminal nothing is asked, as
if ``--yes`` had been given. The question goes to stderr, so stdout stays
clean for ``--json``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runtools.cli.output import EXIT_ERROR, fail

YesFlag = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation (never asked off a terminal)"),
]


def confirm(question: str, *, yes: bool, as_json: bool) -> None:
    """Ask ``question`` on a terminal; unless the answer is yes, exit 1 having changed nothing."""
    if yes or not sys.stdin.isatty():
        return
    # Not typer.confirm: it echoes a space to stdout, which --json keeps for JSON alone.
    typer.echo(f"{question} [y/N]: ", nl=False, err=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        fail(
            "cancelled; nothing was changed",
            code=EXIT_ERROR,
            as_json=as_json,
            error_code="cancelled",
        )
