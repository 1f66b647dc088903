"""How the sandbox services reach the database without blocking the event loop.

The driver is asynchronous and the database is not: each unit of work runs in
a worker thread, in one transaction, committed when it returns and rolled
back when it raises. What the work does is the repositories' business
(``store/repositories/sandboxes.py``); no query is written here or in the
modules that call this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread

from runtools.server.store.database import Database

if TYPE_CHECKING:
    from runtools.server.store.database import Session

__all__ = ["in_transaction"]

T = TypeVar("T")


async def in_transaction(database: Database, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction, in a worker thread; commit if it returns."""

    def run() -> T:
        with database.session() as session:
            result = work(session)
            session.commit()
            return result

    return await anyio.to_thread.run_sync(run)
