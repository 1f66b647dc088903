"""A sandbox's life: create, look up, pause, resume, destroy; quotas and the node's budget.

What is asked for and shown lives in ``records``, which statuses allow what
in ``states``; commands and files of a running sandbox in ``io``, which asks
this service first (``ready``); keeping records true to the processes in
``upkeep``. Not here: queries (``store/repositories/sandboxes.py``),
isolation (the driver, ``runtools.server.sandbox``), HTTP.

Rules enforced here, whatever the transport:
- a member sees and uses their own sandboxes, an admin every sandbox of the
  org; anything else (another member's, another org's) is "not found";
- a sandbox is addressed by id or by name (unique among the org's
  sandboxes that are not destroyed);
- every action checks the status first (``states``) and moves the
  record through a transitional status with a conditional update, so
  concurrent requests - on one node or several - cannot both act;
- an organization never has more live sandboxes than its quota: creations
  are serialised per organization in the database;
- a node never promises its live sandboxes more memory in all than its
  budget (files live in RAM, so this bounds them too): creations are
  serialised per node as well;
- with a node registry (a shared database, ``nodes``): a create lands on the
  live node with the least memory promised among those with room (placement
  is serialised in the database, so concurrent creates never overbook a
  node), and a sandbox held by another live node is ``HeldElsewhere``: the
  API forwards the call to that node, which checks the caller again;
- nothing is recorded when isolation is unavailable (503), and no command
  ever runs outside it;
- environment values reach the driver only; records and audit events hold
  their names. Command output is never recorded.

Database work runs in worker threads (``transactions``); the driver is
asynchronous. Neither blocks the event loop.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import (
    Conflict,
    Forbidden,
    HeldElsewhere,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    SandboxNotFound,
    SandboxStateConflict,
    SandboxUnavailable,
)
from runtools.server.domain.paging import Page
from runtools.server.domain.principal import Principal
from runtools.server.sandbox.driver import (
    ResourceLimits,
    SandboxDriver,
    SandboxSpec,
)
from runtools.server.sandbox.templates import TemplateStore
from runtools.server.services.projects import checked_project
from runtools.server.services.sandboxes.locations import Location, Locations
from runtools.server.services.sandboxes.records import (
    ID_PREFIX,
    ExecRequest,
    NewSandbox,
    SandboxView,
    new_sandbox_id,
    validated,
    view_of,
)
from runtools.server.services.sandboxes.states import (
    LIVE,
    Action,
    SandboxStatus,
    refusal,
    require,
)
from runtools.server.services.sandboxes.transactions import in_transaction
from runtools.server.store.database import Database
from runtools.server.store.repositories import audit, nodes, ssh_keys
from runtools.server.store.repositories import sandboxes as repo

if TYPE_CHECKING:
    from runtools.server.store.database import Session
    from runtools.server.store.models import Node, Sandbox

__all__ = ["SandboxService"]

T = TypeVar("T")
S = SandboxStatus

AUDITED_COMMAND_CHARS = 256
LOST_MESSAGE = "its processes exited unexpectedly"

# Where each action goes: allowed from, through, to.
_STEPS: dict[Action, tuple[frozenset[str], SandboxStatus, SandboxStatus, str]] = {
    Action.PAUSE: (frozenset({S.RUNNING}), S.PAUSING, S.PAUSED, "sandbox.paused"),
    Action.RESUME: (frozenset({S.PAUSED}), S.RESUMING, S.RUNNING, "sandbox.resumed"),
    Action.DESTROY: (
        frozenset({S.RUNNING, S.PAUSED, S.FAILED, S.ERROR}),
        S.DESTROYING,
        S.DESTROYED,
        "sandbox.destroyed",
    ),
}


def _name_taken(name: str | None) -> Conflict:
    return Conflict(
        f"A sandbox named {name!r} already exists; choose another name or destroy it first"
    )


class SandboxService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        driver: SandboxDriver,
        *,
        node: str,
        quota: int,
        memory_budget_mib: int,
        node_lost_after_seconds: float | None = None,
        templates: TemplateStore | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self.driver = driver
        self.node = node
        self._quota = quota
        self._memory_budget = memory_budget_mib
        self._templates = templates
        # Set with a node registry (many nodes on one database): a node silent
        # this long takes no creates. None: this node alone, nothing forwarded.
        self._lost_after = (
            None if node_lost_after_seconds is None else timedelta(seconds=node_lost_after_seconds)
        )
        # Where sandboxes of other nodes are, so calls for them are forwarded
        # without a transaction here (``locations``: never a grant of access).
        self.locations = Locations(ttl_seconds=node_lost_after_seconds or 0.0)
        # Commands and file operations in flight, per sandbox (this node only):
        # a sandbox that is busy is never idle.
        self._busy: Counter[str] = Counter()

    # -- plumbing --------------------------------------------------------------

    async def _db(self, work: Callable[[Session], T]) -> T:
        return await in_transaction(self._database, work)

    def _visible(self, session: Session, caller: Principal, ref: str) -> Sandbox:
        row = repo.find(session, caller.org_id, ref)
        if row is None or (not caller.is_admin and row.owner_user_id != caller.user_id):
            raise NotFound(f"No sandbox {ref!r}")
        return row

    @property
    def memory_budget_mib(self) -> int:
        return self._memory_budget

    def is_busy(self, sandbox_id: str) -> bool:
        return self._busy[sandbox_id] > 0

    @contextlib.contextmanager
    def in_use(self, sandbox_id: str) -> Iterator[None]:
        self._busy[sandbox_id] += 1
        try:
            yield
        finally:
            self._busy[sandbox_id] -= 1
            if self._busy[sandbox_id] <= 0:
                del self._busy[sandbox_id]

    def _audit(
        self,
        session: Session,
        caller: Principal | None,
        action: str,
        view: SandboxView,
        context: RequestContext,
        details: dict[str, Any] | None = None,
        outcome: str = "success",
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome=outcome,
                org_id=view.org_id,
                actor_type=caller.credential_type if caller else "system",
                actor_id=caller.credential_id if caller else None,
                context=context,
                target_type="sandbox",
                target_id=view.id,
                details={
                    "name": view.name,
                    **({"actorUserId": caller.user_id} if caller else {}),
                    **(details or {}),
                },
            ),
            self._clock.now(),
        )

    # -- creating --------------------------------------------------------------

    async def create(
        self, caller: Principal, new: NewSandbox, *, context: RequestContext
    ) -> SandboxView:
        new = validated(new)
        if context.placed is not None:
            # Another node recorded it here (placement) and forwarded the create.
            sandbox_id = context.placed
            await self._db(lambda s: self._claim_placed(s, caller, sandbox_id, new))
        elif self._lost_after is None:
            if self._templates is not None:
                # 400 naming the templates there are, before anything is recorded.
                self._templates.resolve(new.template)
            # 503 naming what is missing, before anything is recorded.
            await self.driver.check_available()
            sandbox_id = new_sandbox_id()
            await self._db(lambda s: self._insert(s, caller, sandbox_id, new))
        else:
            sandbox_id = new_sandbox_id()
            holder = await self._db(lambda s: self._insert(s, caller, sandbox_id, new))
            if holder is not None:
                raise HeldElsewhere(holder.name, holder.url, placed=sandbox_id)
            try:
                await self.driver.check_available()
            except SandboxUnavailable:
                await self._db(lambda s: repo.remove(s, sandbox_id))
                raise
        spec = SandboxSpec(
            template=new.template,
            env=dict(new.env),
            resources=ResourceLimits(
                vcpus=new.resources.vcpus,
                memory_mib=new.resources.memory_mib,
                disk_mib=new.resources.disk_mib,
            ),
        )
        try:
            await self.driver.create(sandbox_id, spec)
        except InvalidRequest:
            # The driver refused the spec itself (template, env): nothing ran.
            await self._db(lambda s: repo.remove(s, sandbox_id))
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or "the sandbox could not be started"
            await self._settle(sandbox_id, {S.CREATING}, S.FAILED, message[:500])
            raise

        def started(session: Session) -> SandboxView:
            repo.transition(
                session,
                sandbox_id,
                allowed_from={S.CREATING},
                to=S.RUNNING,
                now=self._clock.now(),
                touch=True,
            )
            view = view_of(repo.get_one(session, sandbox_id))
            self._audit(
                session,
                caller,
                "sandbox.created",
                view,
                context,
                {
                    "template": view.template,
                    "envKeys": view.env_keys,
                    "resources": view.resources.__dict__,
                },
            )
            return view

        return await self._db(started)

    def _insert(
        self, session: Session, caller: Principal, sandbox_id: str, new: NewSandbox
    ) -> Node | None:
        """Record the sandbox on the node it is placed on; that node if it is another."""
        project_id = checked_project(session, caller, new.project_id)
        unknown = sorted(
            set(new.ssh_keys) - ssh_keys.ids_of_org(session, caller.org_id, new.ssh_keys)
        )
        if unknown:
            raise InvalidRequest(
                f"sshKeys: {', '.join(unknown)} is not an SSH key registered with this "
                "organization (see GET /v1/ssh-keys)"
            )
        repo.lock_org(session, caller.org_id)
        if repo.count_live(session, caller.org_id, LIVE) >= self._quota:
            raise QuotaExceeded(
                f"Your organization has reached its quota of {self._quota} live sandboxes; "
                "destroy one first"
            )
        if self._lost_after is None:
            self._reserve_memory(session, new.resources.memory_mib)
            holder = None
        else:
            holder = self._place(session, new.resources.memory_mib)
        if new.name is not None:
            existing = repo.find(session, caller.org_id, new.name)
            if existing is not None and existing.status != S.DESTROYED:
                raise _name_taken(new.name)
        try:
            repo.insert(
                session,
                sandbox_id=sandbox_id,
                org_id=caller.org_id,
                owner_user_id=caller.user_id,
                name=new.name,
                template=new.template,
                status=S.CREATING,
                tags=list(new.tags),
                env_keys=sorted(new.env),
                project_id=project_id,
                idle_timeout=new.idle_timeout,
                vcpus=new.resources.vcpus,
                memory_mib=new.resources.memory_mib,
                disk_mib=new.resources.disk_mib,
                node=self.node if holder is None else holder.name,
                now=self._clock.now(),
                ssh_key_ids=list(new.ssh_keys),
            )
        except repo.NameTaken as exc:  # a concurrent create took the name first
            raise _name_taken(new.name) from exc
        return holder

    def _place(self, session: Session, memory_mib: int) -> Node | None:
        """The live node with room and the least memory promised; None if it is this one.

        Serialised across the deployment (one placement at a time, for the
        length of the create's first transaction), so two creates never both
        count on the same room.
        """
        assert self._lost_after is not None
        repo.lock_node(session, "*placement*")
        fresh_since = self._clock.now() - self._lost_after
        live = [
            n
            for n in nodes.listing(session)
            if n.lost_at is None and as_utc(n.heartbeat_at) >= fresh_since
        ]
        if not live:
            # No node has registered yet (this one is starting): it takes what it can hold.
            self._reserve_memory(session, memory_mib)
            return None
        largest = max(n.memory_budget_mib for n in live)
        if memory_mib > largest:
            raise InvalidRequest(
                f"resources.memory of {memory_mib} MiB is more than any node gives all its "
                f"sandboxes together ({largest} MiB)"
            )
        promised = nodes.promised_by_node(session, LIVE)
        room = [
            (promised.get(n.name, (0, 0))[0], n.name != self.node, n.name, n)
            for n in live
            if promised.get(n.name, (0, 0))[0] + memory_mib <= n.memory_budget_mib
        ]
        if not room:
            raise SandboxUnavailable(
                f"There is no room for a sandbox with {memory_mib} MiB of memory on any node now; "
                "ask for less memory, destroy a sandbox or try again later"
            )
        chosen = min(room)[3]
        return None if chosen.name == self.node else chosen

    def _claim_placed(
        self, session: Session, caller: Principal, sandbox_id: str, new: NewSandbox
    ) -> None:
        """Check a sandbox another node placed here is this caller's create, not yet started."""
        row = repo.get(session, sandbox_id)
        if (
            row is None
            or row.node != self.node
            or row.status != S.CREATING
            or row.org_id != caller.org_id
            or row.owner_user_id != caller.user_id
            or row.name != new.name
        ):
            raise Conflict(f"Sandbox {sandbox_id} is not waiting to be started on this node")

    async def abandon_placed(self, sandbox_id: str, reason: str) -> None:
        """A create placed on another node that did not start it: free its place."""
        await self._settle(sandbox_id, {S.CREATING}, S.FAILED, reason[:500])

    def fail_node(self, session: Session, node: str, reason: str) -> list[str]:
        """Every live sandbox of a lost node becomes failed (audited); their ids."""
        failed = []
        for row in repo.on_node(session, node, LIVE):
            if repo.transition(
                session,
                row.id,
                allowed_from=LIVE,
                to=S.FAILED,
                now=self._clock.now(),
                message=reason,
            ):
                self._audit(
                    session,
                    None,
                    "sandbox.failed",
                    view_of(repo.get_one(session, row.id)),
                    RequestContext(),
                    {"reason": reason},
                    outcome="failure",
                )
                failed.append(row.id)
        return failed

    def _reserve_memory(self, session: Session, memory_mib: int) -> None:
        budget = self._memory_budget
        if memory_mib > budget:
            raise InvalidRequest(
                f"resources.memory of {memory_mib} MiB is more than this node gives all its "
                f"sandboxes together ({budget} MiB)"
            )
        repo.lock_node(session, self.node)
        promised = repo.memory_promised(session, self.node, LIVE)
        if promised + memory_mib > budget:
            # How much others use stays unsaid: one tenant learns nothing of another.
            raise SandboxUnavailable(
                f"This node has no room for a sandbox with {memory_mib} MiB of memory now; "
                "ask for less memory, destroy a sandbox or try again later"
            )

    # -- reading ---------------------------------------------------------------

    async def list_sandboxes(
        self,
        caller: Principal,
        *,
        all_sandboxes: bool,
        statuses: list[str],
        tags: list[str],
        template: str | None,
        limit: int,
        cursor: str | None,
        project_id: str | None = None,
    ) -> Page[SandboxView]:
        if all_sandboxes and not caller.is_admin:
            raise Forbidden("Listing every sandbox of the organization requires role admin")
        unknown = sorted(set(statuses) - set(SandboxStatus))
        if unknown:
            raise InvalidRequest(
                f"Unknown status(es): {', '.join(unknown)}. Valid: {', '.join(SandboxStatus)}"
            )

        def page(session: Session) -> Page[SandboxView]:
            found = repo.search(
                session,
                caller.org_id,
                owner_user_id=None if all_sandboxes else caller.user_id,
                statuses=statuses,
                tags=tags,
                template=template,
                limit=limit,
                cursor=cursor,
                project_id=checked_project(session, caller, project_id),
            )
            return Page([view_of(r) for r in found.items], found.next_cursor)

        return await self._db(page)

    async def get(self, caller: Principal, ref: str) -> SandboxView:
        return await self._db(lambda s: view_of(self._visible(s, caller, ref)))

    async def held_here(self, caller: Principal, ref: str) -> SandboxView:
        """The sandbox, if this node holds it; ``HeldElsewhere`` if another live node does.

        For what only the holder can answer (how to reach it over SSH). A
        sandbox whose node is gone is answered here: there is nobody to ask.
        """

        def find(session: Session) -> SandboxView:
            row = self._visible(session, caller, ref)
            if row.node != self.node and self._lost_after is not None:
                holder = nodes.get(session, row.node)
                if holder is not None and holder.lost_at is None:
                    raise HeldElsewhere(holder.name, holder.url)
            return view_of(row)

        return await self._db(find)

    # -- lifecycle -------------------------------------------------------------

    async def pause(self, caller: Principal, ref: str, *, context: RequestContext) -> SandboxView:
        return await self._step(caller, ref, Action.PAUSE, context)

    async def resume(self, caller: Principal, ref: str, *, context: RequestContext) -> SandboxView:
        return await self._step(caller, ref, Action.RESUME, context)

    async def destroy(self, caller: Principal, ref: str, *, context: RequestContext) -> SandboxView:
        return await self._step(caller, ref, Action.DESTROY, context)

    async def pause_idle(self, sandbox_id: str) -> bool:
        """Pause an idle sandbox on behalf of the system; False if it raced with a user."""
        try:
            await self._step(None, sandbox_id, Action.PAUSE, RequestContext(), idle=True)
        except Conflict:
            return False
        return True

    async def _step(
        self,
        caller: Principal | None,
        ref: str,
        action: Action,
        context: RequestContext,
        *,
        idle: bool = False,
    ) -> SandboxView:
        allowed, via, to, audited = _STEPS[action]

        def begin(session: Session) -> SandboxView:
            if caller is None:
                row = repo.get_one(session, ref)
            else:
                row = self._visible(session, caller, ref)
            require(action, row.status, ref)
            self._check_node(session, row, action)
            if not repo.transition(
                session, row.id, allowed_from=allowed, to=via, now=self._clock.now()
            ):
                require(action, repo.status_of(session, row.id), ref)
                raise Conflict(f"Sandbox {ref} changed meanwhile; try again")
            return view_of(row)

        view = await self._db(begin)
        previous = SandboxStatus(view.status)
        try:
            await self._drive(action, view)
        except (SandboxStateConflict, SandboxNotFound) as exc:
            if action is Action.DESTROY and isinstance(exc, SandboxNotFound):
                pass  # already gone from the driver: nothing left to free
            else:
                await self.lost(view.id, via)
                raise Conflict(
                    f"Sandbox {ref} has stopped ({LOST_MESSAGE}); destroy it and create a new one"
                ) from exc
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{action} failed"
            if action is Action.PAUSE and await self.driver.is_alive(view.id):
                await self._settle(view.id, {via}, previous, None)  # the driver thawed it back
            else:
                await self._settle(view.id, {via}, S.ERROR, f"{action} failed: {message}"[:500])
            raise

        def finish(session: Session) -> SandboxView:
            repo.transition(
                session,
                view.id,
                allowed_from={via},
                to=to,
                now=self._clock.now(),
                touch=action is Action.RESUME,
            )
            done = view_of(repo.get_one(session, view.id))
            self._audit(session, caller, audited, done, context, {"idle": True} if idle else None)
            return done

        return await self._db(finish)

    async def _drive(self, action: Action, view: SandboxView) -> None:
        if action is Action.PAUSE:
            await self.driver.pause(view.id)
        elif action is Action.RESUME:
            await self.driver.resume(view.id)
        elif view.node == self.node:
            await self.driver.destroy(view.id)
        # A failed sandbox of another node holds nothing: its node freed it.

    def _check_node(self, session: Session, row: Sandbox, action: Action) -> None:
        if row.node == self.node:
            return
        if action is Action.DESTROY and row.status == S.FAILED:
            return
        if self._lost_after is not None:
            holder = nodes.get(session, row.node)
            if holder is not None and holder.lost_at is None:
                self.locations.note(row.id, Location(holder.name, holder.url))
                raise HeldElsewhere(holder.name, holder.url, sandbox=row.id)
        raise Conflict(
            f"Sandbox {row.id} runs on node {row.node}, which is not live now; it is failed "
            "once that node is declared lost, and can then be destroyed from any node"
        )

    async def _settle(
        self, sandbox_id: str, allowed: set[SandboxStatus], to: SandboxStatus, message: str | None
    ) -> None:
        def settle(session: Session) -> None:
            repo.transition(
                session,
                sandbox_id,
                allowed_from=allowed,
                to=to,
                now=self._clock.now(),
                message=message,
            )
            if to in (S.FAILED, S.ERROR):
                row = repo.get_one(session, sandbox_id)
                self._audit(
                    session,
                    None,
                    f"sandbox.{to}",
                    view_of(row),
                    RequestContext(),
                    {"reason": message},
                    outcome="failure",
                )

        await self._db(settle)

    async def lost(self, sandbox_id: str, status: str) -> None:
        """The driver has no live processes for a sandbox the records call live."""
        await self._settle(sandbox_id, {SandboxStatus(status)}, S.FAILED, LOST_MESSAGE)
        with contextlib.suppress(Exception):
            await self.driver.destroy(sandbox_id)  # free cgroups, state and uid

    # -- for commands and files (io) ------------------------------------------

    async def ready(self, caller: Principal, ref: str, action: Action) -> SandboxView:
        """The sandbox, checked usable for ``action``; its activity time is bumped.

        A sandbox id already found held by another node is ``HeldElsewhere`` at
        once: that node checks the caller, the status and bumps the time itself.
        """
        if self._lost_after is not None and ref.startswith(ID_PREFIX):
            known = self.locations.get(ref)
            if known is not None:
                raise HeldElsewhere(known.node, known.url, sandbox=ref)

        def check(session: Session) -> SandboxView:
            row = self._visible(session, caller, ref)
            require(action, row.status, ref)
            self._check_node(session, row, action)
            repo.touch(session, row, self._clock.now())
            return view_of(row)

        return await self._db(check)

    async def explain(self, view: SandboxView, exc: Exception) -> Exception:
        """Turn a driver's state complaint into what the user should do."""
        if not await self.driver.is_alive(view.id):
            await self.lost(view.id, S.RUNNING)
            return Conflict(
                f"Sandbox {view.name or view.id} has stopped ({LOST_MESSAGE}); "
                "destroy it and create a new one"
            )
        current = await self._db(lambda s: repo.status_of(s, view.id))
        message = refusal(Action.EXEC, current, view.name or view.id)
        return Conflict(message or f"Sandbox {view.name or view.id} is busy; try again")

    async def record_kill(
        self, caller: Principal, view: SandboxView, context: RequestContext
    ) -> SandboxView:
        """Audit a kill of the sandbox's processes; the sandbox as it is now."""

        def record(session: Session) -> SandboxView:
            row = repo.get_one(session, view.id)
            repo.touch(session, row, self._clock.now())
            now = view_of(row)
            self._audit(session, caller, "sandbox.processes_killed", now, context)
            return now

        return await self._db(record)

    async def record_exec(
        self,
        caller: Principal,
        view: SandboxView,
        request: ExecRequest,
        exit_code: int | None,
        timed_out: bool,
        context: RequestContext,
    ) -> None:
        def record(session: Session) -> None:
            row = repo.get(session, view.id)
            if row is not None:
                repo.touch(session, row, self._clock.now())
            self._audit(
                session,
                caller,
                "sandbox.exec",
                view,
                context,
                {
                    # The command, cut short; never its output or env values.
                    "command": request.command[:AUDITED_COMMAND_CHARS],
                    "cwd": request.cwd,
                    "envKeys": sorted(request.env),
                    "exitCode": exit_code,
                    "timedOut": timed_out,
                },
            )

        await self._db(record)
