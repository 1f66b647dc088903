"""The node registry: nodes say they are alive, and silent nodes are declared lost.

With many nodes on one database each ``runtools serve`` registers itself
(name, the URL other nodes forward to, its memory budget, its version) and
beats every ``node_heartbeat_seconds``. At each beat it also sweeps: any node
whose last beat is older than ``node_lost_after_seconds`` is marked lost, in
the same transaction its live sandboxes become ``failed`` ("node n3 was
lost", audited as ``sandbox.failed``), which frees their organization's quota
and their place. Any live node may sweep; row locks make each loss happen
once. A lost node that comes back finds its sandboxes failed: it reaps what
is left of them (``upkeep.reconcile``) and registers again, never bringing
one back. A node that stops cleanly leaves at once (marked lost itself, its
sandboxes already failed by its own upkeep), so nothing is placed on it.

Not here: placement and forwarding decisions (``service``, on the rows this
keeps), node-to-node HTTP (the API), queries (``store/repositories/nodes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runtools.server.domain.clock import Clock, as_utc
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.states import LIVE
from runtools.server.services.sandboxes.transactions import in_transaction
from runtools.server.store.database import Database
from runtools.server.store.repositories import nodes

if TYPE_CHECKING:
    from runtools.server.store.database import Session

__all__ = ["NodeRegistry", "NodeView"]

logger = logging.getLogger("runtools.nodes")


@dataclass(frozen=True)
class NodeView:
    name: str
    url: str
    live: bool
    sandboxes: int
    memory_promised_mib: int
    memory_budget_mib: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    lost_at: datetime | None


class NodeRegistry:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        sandboxes: SandboxService,
        *,
        url: str,
        memory_budget_mib: int,
        version: str,
        heartbeat_seconds: float,
        lost_after_seconds: float,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sandboxes = sandboxes
        self.node = sandboxes.node
        self.url = url
        self._budget = memory_budget_mib
        self._version = version
        self._every = heartbeat_seconds
        self._lost_after = timedelta(seconds=lost_after_seconds)
        self._task: asyncio.Task[None] | None = None
        # Called when this node finds it was declared lost while it ran.
        self.on_lost: Callable[[], Awaitable[object]] | None = None

    async def start(self) -> None:
        await self.register()
        await self.sweep()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="runtools-node-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await in_transaction(self._database, self._leave)

    async def register(self) -> None:
        await in_transaction(
            self._database,
            lambda s: nodes.register(
                s,
                name=self.node,
                url=self.url,
                memory_budget_mib=self._budget,
                version=self._version,
                now=self._clock.now(),
            ),
        )

    async def beat(self) -> None:
        """Note this node alive; if others declared it lost meanwhile, reap and rejoin."""
        alive = await in_transaction(
            self._database, lambda s: nodes.beat(s, self.node, self._clock.now())
        )
        if not alive:
            logger.warning("node %s was declared lost by another node; rejoining", self.node)
            if self.on_lost is not None:
                await self.on_lost()
            await self.register()

    async def sweep(self) -> dict[str, list[str]]:
        """Declare silent nodes lost and fail their sandboxes; sandbox ids by lost node."""
        outcome = await in_transaction(self._database, self._sweep)
        for node, failed in outcome.items():
            self._sandboxes.locations.forget_node(node)
            logger.warning(
                "node %s lost (no heartbeat for %ss): %d sandboxes failed",
                node,
                int(self._lost_after.total_seconds()),
                len(failed),
            )
        return outcome

    def _sweep(self, session: Session) -> dict[str, list[str]]:
        now = self._clock.now()
        lost = nodes.mark_lost(
            session, silent_since=now - self._lost_after, now=now, sparing=self.node
        )
        return {
            node: self._sandboxes.fail_node(session, node, f"node {node} was lost") for node in lost
        }

    def _leave(self, session: Session) -> None:
        row = nodes.get(session, self.node)
        if row is not None and row.url == self.url:
            row.lost_at = self._clock.now()

    async def listing(self) -> list[NodeView]:
        return await in_transaction(self._database, self._listing)

    def _listing(self, session: Session) -> list[NodeView]:
        promised = nodes.promised_by_node(session, LIVE)
        fresh_since = self._clock.now() - self._lost_after
        return [
            NodeView(
                name=row.name,
                url=row.url,
                live=row.lost_at is None and as_utc(row.heartbeat_at) >= fresh_since,
                sandboxes=promised.get(row.name, (0, 0))[1],
                memory_promised_mib=promised.get(row.name, (0, 0))[0],
                memory_budget_mib=row.memory_budget_mib,
                version=row.version,
                started_at=as_utc(row.started_at),
                heartbeat_at=as_utc(row.heartbeat_at),
                lost_at=None if row.lost_at is None else as_utc(row.lost_at),
            )
            for row in nodes.listing(session)
        ]

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.beat()
                await self.sweep()
            except Exception:  # the database may be down for a while: keep beating
                logger.exception("node heartbeat failed")
