"""Carrying credential events between nodes, chosen by configuration alone.

``RUNTOOLS_REDIS_URL`` set: Redis pub/sub. PostgreSQL without Redis:
LISTEN/NOTIFY. SQLite: one process, events delivered in process.
"""

from __future__ import annotations

from runtools.server.broadcast.bus import BroadcastEventBus
from runtools.server.broadcast.transport import Transport, TransportError
from runtools.server.domain.events import InProcessEventBus
from runtools.server.settings import Settings

__all__ = ["BroadcastEventBus", "Transport", "TransportError", "build_event_bus", "event_channel"]


def event_channel(settings: Settings) -> str:
    return f"{settings.namespace}_credential_events"


def build_event_bus(settings: Settings) -> InProcessEventBus | BroadcastEventBus:
    channel = event_channel(settings)
    if settings.redis_url is not None:
        from runtools.server.broadcast.redis_transport import RedisTransport

        return BroadcastEventBus(RedisTransport(settings.redis_url, channel))
    postgres_url = settings.libpq_database_url
    if postgres_url is not None:
        from runtools.server.broadcast.postgres_transport import PostgresTransport

        return BroadcastEventBus(PostgresTransport(postgres_url, channel))
    return InProcessEventBus()
