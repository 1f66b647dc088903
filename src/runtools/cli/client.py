"""How client commands get an SDK client: the one place credentials are chosen.

Order: ``--api-key``, then ``RUNTOOLS_API_KEY`` (read by the SDK), then - once
``runtools login`` exists - the login it stored for the API URL (the SDK's
``resolve_credential`` already has that seam). The URL comes from
``--api-url``, then ``RUNTOOLS_API_URL``, then the SDK's default.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from runtools import APIConnectionError, APIStatusError, RunTools, RunToolsError
from runtools.cli.output import EXIT_UNAVAILABLE, emit_json, fail

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key [default: RUNTOOLS_API_KEY]",
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="RUNTOOLS_API_URL",
        help="Server URL [default: RUNTOOLS_API_URL or http://127.0.0.1:8700]",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout")]


@contextmanager
def api_client(api_key: str | None, api_url: str | None, *, as_json: bool) -> Iterator[RunTools]:
    """An SDK client; any SDK error becomes one line on stderr (with the request id)."""
    try:
        client = RunTools(api_key=api_key or None, base_url=api_url or None)
    except (RunToolsError, ValueError) as exc:
        fail(str(exc), as_json=as_json)
    try:
        with client:
            yield client
    except APIStatusError as exc:
        if as_json:
            emit_json(
                {"error": {"code": exc.code, "message": exc.message, "requestId": exc.request_id}}
            )
        suffix = f" (request id {exc.request_id})" if exc.request_id else ""
        sys.stderr.write(f"error: {exc.message}{suffix}\n")
        raise typer.Exit(1) from None
    except APIConnectionError as exc:
        fail(f"{exc.message} ({client.base_url})", code=EXIT_UNAVAILABLE, as_json=as_json)
    except RunToolsError as exc:
        fail(str(exc), as_json=as_json)
