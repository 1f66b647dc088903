"""PostgreSQL LISTEN/NOTIFY: the broadcast when there is no Redis.

One dedicated connection listens; publishing uses a second, autocommit
connection (``pg_notify`` is delivered to listeners on every node connected
to the same database). TCP keepalives and a periodic ``SELECT 1`` notice a
dead server or network within a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from runtools.server.broadcast.transport import TransportError

_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 3000,
}


class PostgresTransport:
    name = "postgres"

    def __init__(self, url: str, channel: str, *, timeout: float = 2.0) -> None:
        self._url = url
        self._channel = channel
        self._timeout = timeout
        self._publisher: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, int(self._timeout)),
            **_LIVENESS,  # type: ignore[arg-type]
        )

    def send(self, payload: str) -> None:
        with self._lock:
            # A publisher connection kept from before a database restart fails on its
            # first use: a fresh one gets a second try at once. Queuing instead would hold
            # the revocation back from every node until this one published again.
            reused = self._publisher is not None and not self._publisher.closed
            for attempt in (1, 2):
                try:
                    if self._publisher is None or self._publisher.closed:
                        self._publisher = self._connect()
                    self._publisher.execute("SELECT pg_notify(%s, %s)", (self._channel, payload))
                    return
                except psycopg.Error as exc:
                    self._drop_publisher()
                    if attempt == 2 or not reused:
                        raise TransportError(
                            f"postgres notify failed: {type(exc).__name__}"
                        ) from exc

    def listen(
        self,
        deliver: Callable[[str], None],
        subscribed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        try:
            with self._connect() as conn:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                subscribed()
                while not stop.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        deliver(notify.payload)
                    conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise TransportError(f"postgres listener lost: {type(exc).__name__}") from exc

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            finally:
                self._publisher = None

    def close(self) -> None:
        with self._lock:
            self._drop_publisher()
