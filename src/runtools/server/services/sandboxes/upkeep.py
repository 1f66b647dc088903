"""What keeps sandbox records true to the processes: start, idle pausing, stop.

Sandboxes outlive the service process that started them: stopping,
upgrading or crashing ``runtools serve`` (or one of its workers) leaves them
as they are. So, for this node's records:

- **on start** (``reconcile``), when no other worker of this service is
  running (the driver's ``joining``): a running or paused sandbox whose PID 1 is
  still alive (the same pid, start time and cgroup: the driver's
  ``is_alive``) is adopted as it is. One that is not becomes ``failed``
  ("its processes ended while the service was stopped"); one that was being
  destroyed becomes ``destroyed``. Then the driver reaps every sandbox it
  knows that no live record names - processes, cgroups, state and uid
  reservations - including those of the records just failed. A worker that
  starts beside live ones (uvicorn replacing one that died) fails only what
  died, as the idle check does: the others' creations in flight are theirs.
- **while running**: every ``sandbox_idle_check_seconds`` a running or
  paused sandbox whose processes have died (its init killed, say) becomes
  ``failed`` and is cleaned up, so it stops holding its share of the node's
  memory budget and its organization's quota; and a running sandbox with
  an ``idleTimeout`` and no command or file operation in flight, idle for
  longer than that, is paused (audited as the system's act).
- **on a clean stop**: nothing, unless ``stop_with_service`` is set
  (``RUNTOOLS_SANDBOX_STOP_WITH_SERVICE``, for a laptop) and this is the
  last worker to stop: then live records
  become ``failed`` ("the service stopped") and the driver reaps
  everything. Destroying every sandbox of a node on purpose is ``drain``
  (``runtools admin sandboxes drain``).

Records of other nodes are never touched.

Not here: the rules of one action (``service``, which this calls for a
lost or idle sandbox), queries (the repository), killing processes (the
driver's ``reap_orphans`` and ``destroy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import SandboxUnavailable, ServiceUnavailable
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.states import LIVE, SandboxStatus
from runtools.server.services.sandboxes.transactions import in_transaction
from runtools.server.store.database import Database
from runtools.server.store.repositories import audit
from runtools.server.store.repositories import sandboxes as repo

if TYPE_CHECKING:
    from runtools.server.store.database import Session

__all__ = ["Reconciled", "SandboxUpkeep"]

T = TypeVar("T")
logger = logging.getLogger("runtools.sandboxes")
S = SandboxStatus
ADOPTABLE = frozenset({S.RUNNING, S.PAUSED})
ENDED_WHILE_STOPPED = "its processes ended while the service was stopped"


@dataclass
class Reconciled:
    """What ``reconcile`` did, by sandbox id."""

    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    reaped: list[str] = field(default_factory=list)


class SandboxUpkeep:
    def __init__(
        self,
        service: SandboxService,
        database: Database,
        clock: Clock,
        *,
        idle_check_seconds: float,
        stop_with_service: bool = False,
    ) -> None:
        self._service = service
        self._stop_with_service = stop_with_service
        self._database = database
        self._clock = clock
        self._idle_check_seconds = idle_check_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Reconciled:
        async with self._service.driver.joining() as alone:
            if alone:
                outcome = await self.reconcile(ENDED_WHILE_STOPPED)
            else:
                # Other workers of this service hold the sandboxes (this one replaces
                # a worker that died): what they are creating or destroying is theirs.
                # Only sandboxes whose processes died are failed, as the idle check does.
                outcome = Reconciled(failed=await self.fail_lost())
        if self._task is None:
            self._task = asyncio.create_task(self._idle_loop(), name="runtools-sandbox-idle")
        return outcome

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        last = self._service.driver.leave()
        if self._stop_with_service and last:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Fail and reap every live sandbox of this node ("the service stopped")."""
        with contextlib.suppress(Exception):
            await self.reconcile("the service stopped", keep_running=False)

    async def reconcile(self, reason: str, *, keep_running: bool = True) -> Reconciled:
        driver = self._service.driver
        node = self._service.node
        rows = await self._db(lambda s: [(r.id, r.status) for r in repo.on_node(s, node, LIVE)])
        outcome = Reconciled()
        for sandbox_id, status in rows:
            # Alive here: left by the previous service process, or by another
            # worker of this one. Anything else did not survive.
            if keep_running and status in ADOPTABLE and await driver.is_alive(sandbox_id):
                outcome.kept.append(sandbox_id)
            elif status == S.DESTROYING:
                outcome.destroyed.append(sandbox_id)
            else:
                outcome.failed.append(sandbox_id)
        await self._db(lambda s: self._record(s, outcome, reason))
        try:
            outcome.reaped = await driver.reap_orphans(set(outcome.kept))
        except SandboxUnavailable as exc:
            # No isolation now: nothing of ours can be running either.
            logger.warning("sandbox driver unavailable, nothing reaped: %s", exc.message)
        if outcome.failed or outcome.destroyed or outcome.reaped:
            logger.info(
                "sandboxes reconciled (%s): %d failed, %d destroyed, %d reaped, %d kept",
                reason,
                len(outcome.failed),
                len(outcome.destroyed),
                len(outcome.reaped),
                len(outcome.kept),
            )
        return outcome

    async def drain(self) -> list[str]:
        """Destroy every live sandbox of this node on purpose; the ids destroyed.

        Their records become ``destroyed`` (audited as the system's act), and
        the driver reaps every sandbox it holds, recorded or not.
        """
        node = self._service.node
        ids = await self._db(lambda s: [r.id for r in repo.on_node(s, node, LIVE)])
        # Processes first: if the driver cannot reach them, no record changes.
        await self._service.driver.reap_orphans(set())
        outcome = Reconciled(destroyed=ids)
        await self._db(lambda s: self._record(s, outcome, "drained", how="drained"))
        return ids

    def _record(
        self, session: Session, outcome: Reconciled, reason: str, *, how: str = "reconciled"
    ) -> None:
        now = self._clock.now()
        for sandbox_id, to, message in [
            *((i, S.FAILED, reason) for i in outcome.failed),
            *((i, S.DESTROYED, None) for i in outcome.destroyed),
        ]:
            row = repo.get(session, sandbox_id)
            if row is None or not repo.transition(
                session, sandbox_id, allowed_from=LIVE, to=to, now=now, message=message
            ):
                continue
            audit.record(
                session,
                AuditRecord(
                    action=f"sandbox.{to}",
                    outcome="failure" if to == S.FAILED else "success",
                    org_id=row.org_id,
                    actor_type="system",
                    actor_id=None,
                    context=RequestContext(),
                    target_type="sandbox",
                    target_id=sandbox_id,
                    reason=(message or "")[:64] or None,
                    details={"name": row.name, how: True},
                ),
                now,
            )

    async def fail_lost(self) -> list[str]:
        """Fail and clean up this node's running or paused sandboxes whose processes died."""
        node = self._service.node
        rows = await self._db(
            lambda s: [(r.id, r.status) for r in repo.on_node(s, node, {S.RUNNING, S.PAUSED})]
        )
        lost = []
        for sandbox_id, status in rows:
            if not await self._service.driver.is_alive(sandbox_id):
                await self._service.lost(sandbox_id, status)
                lost.append(sandbox_id)
        return lost

    async def pause_idle(self) -> list[str]:
        """Pause every idle sandbox of this node; returns the ids paused."""
        now = self._clock.now()
        node = self._service.node

        def candidates(session: Session) -> list[str]:
            return [
                r.id
                for r in repo.on_node(session, node, {S.RUNNING})
                if r.idle_timeout is not None
                and as_utc(r.last_activity_at) + timedelta(seconds=r.idle_timeout) <= now
            ]

        paused = []
        for sandbox_id in await self._db(candidates):
            if self._service.is_busy(sandbox_id):
                continue
            if await self._service.pause_idle(sandbox_id):
                paused.append(sandbox_id)
        return paused

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(self._idle_check_seconds)
            try:
                await self.fail_lost()
                await self.pause_idle()
            except ServiceUnavailable:
                pass  # the database announces its outage once; the next round tries again
            except Exception:  # keep checking; one bad round must not end the loop
                logger.exception("idle sandbox check failed")

    async def _db(self, work: Callable[[Session], T]) -> T:
        return await in_transaction(self._database, work)
