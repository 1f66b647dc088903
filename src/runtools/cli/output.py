"""How commands speak: JSON for scripts, tables for people, one-line errors, exit codes.

Exit codes, by error class (documented in docs/cli.md):

    0  success
    1  refused: invalid input, a conflict, anything else the server said no to
    2  usage: unknown option, missing argument, bad value
    3  unavailable: no connection, a timeout, a 5xx or 429, the database unreachable
    4  authentication: no credential, or the credential was refused (401)
    5  permission: the credential lacks a scope or role (403)
    6  not found (404)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_AUTHENTICATION = 4
EXIT_PERMISSION = 5
EXIT_NOT_FOUND = 6

#: The JSON error ``code`` of an error the CLI reports without a server's code.
EXIT_CODES = {
    EXIT_ERROR: "refused",
    EXIT_USAGE: "usage_error",
    EXIT_UNAVAILABLE: "unavailable",
    EXIT_AUTHENTICATION: "unauthorized",
    EXIT_PERMISSION: "forbidden",
    EXIT_NOT_FOUND: "not_found",
}


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def fail(
    message: str,
    *,
    code: int = EXIT_ERROR,
    as_json: bool = False,
    error_code: str | None = None,
    request_id: str | None = None,
) -> NoReturn:
    """Print ``error: message (request req_…)`` on stderr (and JSON on stdout) and exit.

    The JSON always has ``code``, ``message`` and ``requestId``: the server's
    code, or for what the CLI finds itself (no connection, a usage error) the
    code of its exit status; ``requestId`` is null when no request was answered.
    """
    if as_json:
        error: dict[str, Any] = {
            "code": error_code or EXIT_CODES.get(code, "error"),
            "message": message,
            "requestId": request_id,
        }
        emit_json({"error": error})
    suffix = f" (request {request_id})" if request_id else ""
    typer.echo(f"error: {message}{suffix}", err=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the person, on stderr, so stdout stays clean for data."""
    typer.echo(message, err=True)


def when(value: datetime | None, *, empty: str = "-") -> str:
    if value is None:
        return empty
    return value.strftime("%Y-%m-%d %H:%M UTC")


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns for people; ids are never cut short (they are there to be copied)."""
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    # Piped output has no width to fit; do not squeeze it into 80 columns.
    Console(width=None if sys.stdout.isatty() else 250).print(grid)


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """``Label:  value`` lines, aligned."""
    width = max(len(label) for label, _ in pairs) + 2
    for label, value in pairs:
        typer.echo(f"{label + ':':<{width}}{value}")
