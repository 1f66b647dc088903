"""Before a server-side command runs: settings that parse, and a database that answers.

``runtools serve`` and ``runtools admin …`` start here, so a bad
``RUNTOOLS_*`` value is one line that names it (exit 2) and a database that
cannot be opened or reached is one line too (exit 3), never a traceback;
``serve`` also claims its node's name (exit 2 if another server holds it).
For ``serve --workers N`` this happens before any worker starts: a worker
that fails on start is restarted by its supervisor, endlessly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from runtools.cli.output import EXIT_UNAVAILABLE, EXIT_USAGE, fail

if TYPE_CHECKING:
    from pydantic import ValidationError

    from runtools.server.settings import Settings


def server_settings(*, as_json: bool = False) -> Settings:
    """The settings from the environment (and ``.env``), or exit 2 naming what is wrong."""
    from pydantic import ValidationError

    from runtools.server.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        fail(describe_settings_error(exc), code=EXIT_USAGE, as_json=as_json)


def describe_settings_error(exc: ValidationError) -> str:
    """``invalid setting: RUNTOOLS_X: why``, for each bad setting; never the value itself."""
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        why = str(error["msg"]).removeprefix("Value error, ")
        problems.append(
            why if not name or why.startswith("RUNTOOLS_") else f"RUNTOOLS_{name}: {why}"
        )
    return "invalid setting: " + "; ".join(problems)


def reachable_database(settings: Settings, *, as_json: bool = False) -> None:
    """Open the database and bring its schema up to date, or exit 3 saying why not."""
    from sqlalchemy.exc import SQLAlchemyError

    from runtools.server.domain.errors import ServiceError
    from runtools.server.store import migrate
    from runtools.server.store.database import Database

    try:
        database = Database(settings)
        try:
            migrate.upgrade(database)
        finally:
            database.dispose()
    except (SQLAlchemyError, ServiceError, OSError) as exc:
        unreachable(exc, as_json=as_json)


@contextlib.contextmanager
def claimed_node(settings: Settings) -> Iterator[None]:
    """This node's name, held while the block runs; exit 2 if another server holds it."""
    from sqlalchemy.exc import SQLAlchemyError

    from runtools.server.store.repositories.node_claim import NodeTaken, node_claim

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(node_claim(settings))
        except NodeTaken as exc:
            fail(str(exc), code=EXIT_USAGE)
        except (SQLAlchemyError, OSError) as exc:
            unreachable(exc)
        yield


def unreachable(exc: Exception, *, as_json: bool = False) -> NoReturn:
    """Exit 3: the database could not be opened or reached, with the driver's first line."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    fail(f"cannot open the database: {first_line}", code=EXIT_UNAVAILABLE, as_json=as_json)
