"""SSH into sandboxes: who is let in, what is recorded, and the session's process.

Rules enforced here, whatever the SSH library:
- the SSH user names a sandbox, by id or by name; a connection is admitted
  only with a key registered with the sandbox's organization whose owner is
  still a member of it and may use the sandbox (its owner, or an admin), or
  a key the sandbox was created to let in (``sshKeys``), its owner a member
  too;
- the sandbox must be running on this node; a name that two organizations'
  sandboxes share and the key would open both of is refused (use the id);
- every refusal is the same ``None``: the client learns nothing of why;
- each admission moves the key's ``lastUsedAt`` and is audited
  (``sandbox.ssh``); a session is activity for the idle timeout while it
  lasts, and runs through the driver with the isolation of any command;
- an open session is checked again every ``recheck_seconds``: once its key
  would be refused (removed, its owner removed or demoted out of reach) it
  is ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import NotFound, ServiceUnavailable
from runtools.server.domain.principal import Principal
from runtools.server.sandbox.driver import SandboxSession, TerminalSize
from runtools.server.services.sandboxes.records import SandboxView
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.states import SandboxStatus
from runtools.server.services.sandboxes.transactions import in_transaction
from runtools.server.store.database import Database
from runtools.server.store.repositories import audit, organizations, ssh_keys
from runtools.server.store.repositories import sandboxes as repo

if TYPE_CHECKING:
    from runtools.server.store.database import Session
    from runtools.server.store.models import Sandbox, SshKey

__all__ = ["SandboxSsh", "SshAccess", "SshAdmission"]

logger = logging.getLogger("runtools.ssh")

#: How often an open session checks that its key still lets it in.
RECHECK_SECONDS = 10.0


@dataclass(frozen=True)
class SshAdmission:
    """A key let into a sandbox: which, whose, and as what SSH user."""

    user: str
    sandbox_id: str
    sandbox_name: str | None
    org_id: str
    key_id: str
    key_owner_user_id: str
    fingerprint: str


@dataclass(frozen=True)
class SshAccess:
    """How to reach a sandbox over SSH (``GET /v1/sandboxes/{id}/ssh``)."""

    host: str
    port: int
    user: str
    command: str


def _may_use(session: Session, sandbox: Sandbox, key: SshKey) -> bool:
    if key.org_id != sandbox.org_id:
        return False
    role = organizations.role_in(session, sandbox.org_id, key.owner_user_id)
    if not role:
        return False  # the key's owner left or was removed: their keys open nothing
    return (
        key.owner_user_id == sandbox.owner_user_id
        or role == "admin"
        or key.id in (sandbox.ssh_key_ids or [])
    )


class SandboxSsh:
    def __init__(
        self, database: Database, clock: Clock, sandboxes: SandboxService, *, port: int | None
    ) -> None:
        self._database = database
        self._clock = clock
        self._sandboxes = sandboxes
        self._driver = sandboxes.driver
        self.port = port
        self.recheck_seconds = RECHECK_SECONDS

    async def admit(self, user: str, fingerprint: str) -> SshAdmission | None:
        """The admission of the key with ``fingerprint`` as SSH ``user``; None if refused."""
        if not user or len(user) > 128:
            return None

        def judge(session: Session) -> SshAdmission | None:
            keys = ssh_keys.with_fingerprint(session, fingerprint)
            if not keys:
                return None
            matches = [
                (sandbox, key)
                for sandbox in repo.named_anywhere(session, user)
                if sandbox.status == SandboxStatus.RUNNING and sandbox.node == self._sandboxes.node
                for key in keys
                if _may_use(session, sandbox, key)
            ]
            if len({sandbox.id for sandbox, _ in matches}) != 1:
                return None
            sandbox, key = matches[0]
            return SshAdmission(
                user=user,
                sandbox_id=sandbox.id,
                sandbox_name=sandbox.name,
                org_id=sandbox.org_id,
                key_id=key.id,
                key_owner_user_id=key.owner_user_id,
                fingerprint=key.fingerprint,
            )

        return await in_transaction(self._database, judge)

    async def record(self, admission: SshAdmission, context: RequestContext) -> None:
        """The key was used now; the admission is in the organization's audit log."""

        def write(session: Session) -> None:
            now = self._clock.now()
            ssh_keys.note_use(session, admission.key_id, now)
            row = repo.get(session, admission.sandbox_id)
            if row is not None:
                repo.touch(session, row, now)
            audit.record(
                session,
                AuditRecord(
                    action="sandbox.ssh",
                    outcome="success",
                    org_id=admission.org_id,
                    actor_type="ssh_key",
                    actor_id=admission.key_id,
                    context=context,
                    target_type="sandbox",
                    target_id=admission.sandbox_id,
                    details={
                        "name": admission.sandbox_name,
                        "actorUserId": admission.key_owner_user_id,
                        "fingerprint": admission.fingerprint,
                        "sshUser": admission.user,
                    },
                ),
                now,
            )

        await in_transaction(self._database, write)

    @contextlib.asynccontextmanager
    async def session(
        self, admission: SshAdmission, command: str | None, terminal: TerminalSize | None
    ) -> AsyncIterator[SandboxSession]:
        """A process in the admitted sandbox, for as long as the context lasts.

        The sandbox is checked again first (still running here, the key still
        letting in); ``NotFound`` otherwise. Busy while open: not idle.
        """
        again = await self.admit(admission.user, admission.fingerprint)
        if again is None or again.sandbox_id != admission.sandbox_id:
            raise NotFound("No such sandbox")

        def touch(session: Session) -> None:
            row = repo.get(session, admission.sandbox_id)
            if row is not None:
                repo.touch(session, row, self._clock.now())

        with self._sandboxes.in_use(admission.sandbox_id):
            process = await self._driver.open_session(
                admission.sandbox_id, command, terminal=terminal
            )
            watch = asyncio.get_running_loop().create_task(self._watch(admission, process))
            try:
                yield process
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
                await process.close()
                await in_transaction(self._database, touch)

    async def _watch(self, admission: SshAdmission, process: SandboxSession) -> None:
        """End the session once its key no longer lets in (removed, its owner gone)."""
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                again = await self.admit(admission.user, admission.fingerprint)
            except Exception as exc:  # the database is unreachable for a moment: try again later
                logger.warning("SSH session recheck failed: %s", type(exc).__name__)
                continue
            if again is None or again.sandbox_id != admission.sandbox_id:
                await process.terminate()
                return

    async def access(self, caller: Principal, ref: str, host: str) -> SshAccess:
        """How the caller reaches the sandbox over SSH: through the node that holds it.

        The sandbox must be visible to the caller; one held by another live
        node is ``HeldElsewhere`` (the API asks that node, whose port it is).
        """
        view: SandboxView = await self._sandboxes.held_here(caller, ref)
        if self.port is None:
            raise ServiceUnavailable(
                "SSH is not enabled on this server (the operator sets RUNTOOLS_SSH_PORT)"
            )
        port = "" if self.port == 22 else f" -p {self.port}"
        return SshAccess(
            host=host, port=self.port, user=view.id, command=f"ssh{port} {view.id}@{host}"
        )
