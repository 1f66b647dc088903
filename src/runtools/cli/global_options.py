"""Global options in any position: ``runtools auth status --api-url URL`` works.

``--api-url`` and ``--api-key`` belong to the root command, ``--json`` to
each command. People put them where their fingers go (``gh`` and ``kubectl``
accept them anywhere), so before click parses, :func:`hoist` moves each to
where it belongs: ``--api-url`` / ``--api-key`` to the front, ``--json`` to
the command. A later ``--api-key`` wins over an earlier one.

What follows ``--`` is never touched: ``sandbox exec box -- cmd --json``
keeps ``--json`` for the command being run. Values of the commands' own
options are never mistaken for global options (``--name --json`` names a
key "--json"): the walk knows which options take a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["GLOBAL_VALUE_OPTIONS", "JSON_FLAG", "MissingValue", "hoist", "options_part"]

#: Root options taking a value, accepted before or after the command.
GLOBAL_VALUE_OPTIONS = ("--api-url", "--api-key")
#: Every command's flag for JSON output, accepted before the command too.
JSON_FLAG = "--json"
END_OF_OPTIONS = "--"


def options_part(args: Sequence[str]) -> list[str]:
    """The arguments before ``--``: what follows it is a command's to run, not the CLI's."""
    args = list(args)
    return args[: args.index(END_OF_OPTIONS)] if END_OF_OPTIONS in args else args


def _option(command: Any, name: str) -> Any | None:
    for param in getattr(command, "params", ()):
        names = (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
        if name in names and param.param_type_name == "option":
            return param
    return None


def _values_taken(option: Any) -> int:
    """How many of the next arguments an option (given without ``=``) consumes."""
    if option is None or option.is_flag or option.count:
        return 0
    return int(option.nargs)


class MissingValue(ValueError):
    """A global option at the end of the line, with no value after it."""


def hoist(root: Any, args: Sequence[str]) -> list[str]:
    """``args`` with the global options moved to where the root's parser expects them."""
    head = options_part(args)
    tail = list(args)[len(head) :]
    hoisted: list[str] = []
    rest: list[str] = []
    wants_json = False
    command = root
    at = 0
    while at < len(head):
        arg = head[at]
        name, has_value, _ = arg.partition("=")
        if arg == JSON_FLAG:
            wants_json = True
            at += 1
        elif name in GLOBAL_VALUE_OPTIONS:
            taken = 0 if has_value else 1
            if at + taken >= len(head):
                raise MissingValue(f"Option '{name}' requires an argument.")
            hoisted += head[at : at + 1 + taken]
            at += 1 + taken
        elif arg.startswith("-") and arg != "-":
            taken = 0 if has_value else _values_taken(_option(command, name))
            rest += head[at : at + 1 + taken]
            at += 1 + taken
        else:
            rest.append(arg)
            subcommands = getattr(command, "commands", None)
            if isinstance(subcommands, dict) and arg in subcommands:
                command = subcommands[arg]
            at += 1
    return hoisted + rest + ([JSON_FLAG] if wants_json else []) + tail
