"""Credential events: what the verification caches must forget, and when.

Services publish after their transaction commits. In one process the bus
calls subscribers directly; the scale-out transports (Redis, PostgreSQL
LISTEN/NOTIFY) carry the same events between nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger("runtools.events")


class EventKind(StrEnum):
    KEY_REVOKED = "key_revoked"
    KEY_CHANGED = "key_changed"
    MEMBER_CHANGED = "member_changed"
    SESSION_REVOKED = "session_revoked"
    ORG_CHANGED = "org_changed"


@dataclass(frozen=True)
class CredentialEvent:
    kind: EventKind
    org_id: str
    key_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None


Subscriber = Callable[[CredentialEvent], None]


class EventBus(Protocol):
    """What services publish to and caches subscribe to, whatever the transport."""

    def subscribe(self, subscriber: Subscriber) -> None: ...

    def publish(self, event: CredentialEvent) -> None: ...


class InProcessEventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: CredentialEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not undo a committed change
                logger.exception("event subscriber failed for %s", event.kind)
