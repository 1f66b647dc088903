"""The root command's own behaviour, before any command runs.

- Global options in any position (:func:`runtools.cli.global_options.hoist`).
- With ``--json``, an error in the command line itself (an unknown option,
  a missing argument) is JSON on stdout too, as every other error is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from runtools.cli.global_options import JSON_FLAG, MissingValue, hoist, options_part
from runtools.cli.output import EXIT_USAGE, fail


class RootGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            hoisted = hoist(self, args)
        except MissingValue as exc:
            ctx.fail(str(exc))
        return super().parse_args(ctx, hoisted)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or JSON_FLAG not in options_part(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # the argument parser's errors: usage, exit 2
            _usage_error_as_json(exc)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_error_as_json(exc: typer.TyperException) -> NoReturn:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    try:
        fail(message, code=getattr(exc, "exit_code", EXIT_USAGE), as_json=True)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
