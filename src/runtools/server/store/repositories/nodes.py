"""Every query over the node registry. Rows in, rows out; no rules of liveness here.

A node writes its own row (``register`` on start, ``beat`` while it runs);
any node marks silent ones lost (``mark_lost``), which the sandbox rules
then act on. How long is silent is the caller's to say.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from runtools.server.store.models import Node, Sandbox

__all__ = ["beat", "get", "listing", "mark_lost", "promised_by_node", "register"]


def register(
    session: Session, *, name: str, url: str, memory_budget_mib: int, version: str, now: datetime
) -> Node:
    """Record (or refresh) ``name`` as live at ``url``; a lost node rejoins."""
    row = session.get(Node, name, with_for_update=True)
    if row is None:
        row = Node(name=name, started_at=now)
        session.add(row)
    row.url = url
    row.memory_budget_mib = memory_budget_mib
    row.version = version
    row.started_at = now
    row.heartbeat_at = now
    row.lost_at = None
    session.flush()
    return row


def beat(session: Session, name: str, now: datetime) -> bool:
    """Note ``name`` alive now; False if it is not registered or was marked lost."""
    result = session.execute(
        update(Node)
        .where(Node.name == name, Node.lost_at.is_(None))
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def mark_lost(
    session: Session, *, silent_since: datetime, now: datetime, sparing: str
) -> list[str]:
    """Mark every live node but ``sparing`` silent since before ``silent_since`` lost; names.

    Rows are locked while read (PostgreSQL), so two nodes sweeping at once
    mark each lost node once: the second finds it already marked.
    """
    query = (
        select(Node)
        .where(Node.lost_at.is_(None), Node.heartbeat_at < silent_since, Node.name != sparing)
        .with_for_update(skip_locked=True)
    )
    names = []
    for row in session.scalars(query):
        row.lost_at = now
        names.append(row.name)
    session.flush()
    return names


def get(session: Session, name: str) -> Node | None:
    return session.get(Node, name)


def listing(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.name)))


def promised_by_node(session: Session, live: Collection[str]) -> dict[str, tuple[int, int]]:
    """Per node: (MiB its live sandboxes may use, how many there are)."""
    query = (
        select(Sandbox.node, func.coalesce(func.sum(Sandbox.memory_mib), 0), func.count())
        .where(Sandbox.status.in_(live))
        .group_by(Sandbox.node)
    )
    return {node: (int(memory), int(count)) for node, memory, count in session.execute(query)}
