"""How commands speak: JSON for scripts, plain lines for people, one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

#: Exit codes, by error class (documented in docs/cli.md).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def fail(message: str, *, code: int = EXIT_ERROR, as_json: bool = False) -> NoReturn:
    if as_json:
        emit_json({"error": {"message": message}})
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
