"""``runtools serve``: run the API service."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Annotated

import typer

from runtools.cli.server_env import claimed_node, reachable_database, server_settings

LOG_LEVELS = ("debug", "info", "warning", "error")

HELP = """Start the API service (SQLite under RUNTOOLS_HOME unless RUNTOOLS_DATABASE_URL is set).

Migrations are applied on start. A setting that does not parse exits 2, a
database that cannot be opened or reached exits 3, both before anything starts.
One server per node: a second one with the same RUNTOOLS_SANDBOX_NODE on the
same database (on SQLite, the same RUNTOOLS_HOME) exits 2.

Examples:

    runtools serve

    runtools serve --host 0.0.0.0 --port 8700

    RUNTOOLS_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/runtools runtools serve

The dashboard (API keys, SSH keys, sandboxes, team, sessions, audit log) is served
at /dashboard, e.g. http://127.0.0.1:8700/dashboard; people sign in there with their
password (an operator sets one with `runtools admin set-password`).

SSH into sandboxes (`runtools sandbox ssh NAME`) is served on a port of its own,
on the same interface, when RUNTOOLS_SSH_PORT is set (one worker process only):

    RUNTOOLS_SSH_PORT=2222 runtools serve --host 0.0.0.0

Several worker processes (PostgreSQL only; add RUNTOOLS_REDIS_URL for shared
rate limits and the fastest revocation broadcast):

    RUNTOOLS_DATABASE_URL=postgresql://… RUNTOOLS_REDIS_URL=redis://127.0.0.1:6379/0 \
        runtools serve --workers 4
"""


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [default: RUNTOOLS_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind [default: RUNTOOLS_PORT or 8700]")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (more than 1 needs PostgreSQL)")
    ] = 1,
) -> None:
    try:
        import uvicorn
    except ImportError as exc:  # the light install has no server
        from runtools.cli.output import fail

        fail(f"the server is not installed ({exc.name}); pip install 'runtools-platform[server]'")
    if log_level.lower() not in LOG_LEVELS:
        from runtools.cli.output import fail

        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}", code=2)
    # The app's own settings (read by each worker) name the address it serves on:
    # other nodes forward sandbox calls there unless RUNTOOLS_NODE_URL says otherwise.
    if host:
        os.environ["RUNTOOLS_HOST"] = host
    if port:
        os.environ["RUNTOOLS_PORT"] = str(port)
    settings = server_settings()
    if workers > 1 and settings.is_sqlite:
        from runtools.cli.output import fail

        fail(
            "--workers above 1 needs RUNTOOLS_DATABASE_URL=postgresql://…: "
            "SQLite serves one process",
            code=2,
        )
    if workers > 1 and settings.ssh_port is not None:
        from runtools.cli.output import fail

        fail(
            "RUNTOOLS_SSH_PORT needs --workers 1: the SSH server runs in the one process "
            "that holds the node's sandboxes",
            code=2,
        )
    reachable_database(settings)  # here, once: a worker failing on start is restarted forever
    if workers > 1 and settings.redis_url is None and settings.rate_limits:
        typer.echo(
            "warning: without RUNTOOLS_REDIS_URL each worker process counts rate limits "
            f"for itself: a credential may make up to {workers} times its limit on this node",
            err=True,
        )
    # Given to uvicorn (not applied here) so that every worker process logs alike.
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"message": {"format": "%(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "message",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": log_level.upper(), "handlers": ["stderr"]},
    }
    if settings.ssh_port is not None:
        typer.echo(
            f"SSH into sandboxes on {host or settings.host} port {settings.ssh_port} "
            "(RUNTOOLS_SSH_PORT)",
            err=True,
        )
    with claimed_node(settings), _shared_metrics(workers > 1 and settings.metrics == "on"):
        uvicorn.run(
            "runtools.server.app:create_app_from_env",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_level=log_level,
            log_config=log_config,
            access_log=False,  # our own access log names routes, never raw paths
            server_header=False,
            proxy_headers=False,
            h11_max_incomplete_event_size=64 * 1024,
        )


@contextlib.contextmanager
def _shared_metrics(enabled: bool) -> Iterator[None]:
    """A fresh directory where worker processes pool their metrics, removed after."""
    from runtools.server.observability.metrics import MULTIPROCESS_DIR

    if not enabled or os.environ.get(MULTIPROCESS_DIR):
        yield
        return
    directory = tempfile.mkdtemp(prefix="runtools-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory  # inherited by every worker
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(directory, ignore_errors=True)
