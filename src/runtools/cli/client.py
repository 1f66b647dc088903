"""How client commands get an SDK client: the one place credentials are chosen.

Order: ``--api-key``, then ``RUNTOOLS_API_KEY`` (read by the SDK), then the
login ``runtools login`` stored for the API URL. The URL comes from
``--api-url``, then ``RUNTOOLS_API_URL``, then the SDK's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from runtools import RunTools
from runtools.cli.context import api_errors, api_url_of, client, globals_of

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
        # No envvar here: RUNTOOLS_API_URL must not outrank the global --api-url.
        help="Server URL [default: RUNTOOLS_API_URL or http://127.0.0.1:8700]",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout")]


@contextmanager
def api_client(
    ctx: typer.Context, api_key: str | None, api_url: str | None, *, as_json: bool
) -> Iterator[RunTools]:
    """An SDK client with the credential that wins, and errors as one line with their exit code.

    A command's own ``--api-key`` / ``--api-url`` win over the global ones,
    which win over ``RUNTOOLS_API_KEY`` and the stored login.
    """
    with api_errors(as_json):
        if api_key is None and api_url is None:
            rt = client(ctx, as_json=as_json)
        else:
            rt = RunTools(
                api_key=api_key or globals_of(ctx).api_key,
                base_url=api_url or api_url_of(ctx, as_json=as_json),
            )
        with rt:
            yield rt
