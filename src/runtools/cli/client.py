"""How client commands get an SDK client: the one place credentials are chosen.

Order: ``--api-key``, then ``RUNTOOLS_API_KEY`` (read by the SDK), then the
login ``runtools login`` stored for the API URL. The URL comes from
``--api-url``, then ``RUNTOOLS_API_URL``, then the SDK's default. Both
options are global (see :mod:`runtools.cli.global_options`): accepted
before or after the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from runtools import RunTools
from runtools.cli.context import api_errors, client

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout")]


@contextmanager
def api_client(ctx: typer.Context, *, as_json: bool) -> Iterator[RunTools]:
    """An SDK client with the credential that wins, and errors as one line with their exit code."""
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        yield rt
