"""``BroadcastEventBus``: credential events delivered here at once and to every node.

Publishing delivers to this process's subscribers synchronously (so the node
that revoked a key refuses it on its very next request), then sends the event
over the transport. A listener thread receives other nodes' events and
delivers them here; it reconnects with capped backoff when the link breaks.

Connection state is announced to watchers (``watch``): the verification
cache shortens its trust while the link is down and forgets everything when
it comes back, because events may have been missed in between. Events that
could not be sent wait in a bounded outbox and go out on reconnection.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable

from runtools.server.broadcast.codec import UndecodableEvent, decode, encode
from runtools.server.broadcast.transport import Transport, TransportError
from runtools.server.domain.events import CredentialEvent, InProcessEventBus, Subscriber

logger = logging.getLogger("runtools.events")

Watcher = Callable[[bool], None]


class BroadcastEventBus:
    def __init__(
        self,
        transport: Transport,
        *,
        node_id: str | None = None,
        first_retry: float = 0.2,
        max_retry: float = 5.0,
        outbox_size: int = 10_000,
    ) -> None:
        self.transport = transport
        self.node_id = node_id or secrets.token_hex(8)
        self._local = InProcessEventBus()
        self._watchers: list[Watcher] = []
        self._outbox: deque[str] = deque(maxlen=outbox_size)
        self._outbox_lock = threading.Lock()
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self._announced = False  # whether the first state (up or down) has been logged
        self.received = 0

    # -- the EventBus contract -------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._local.subscribe(subscriber)

    def publish(self, event: CredentialEvent) -> None:
        self._local.publish(event)
        payload = encode(event, self.node_id)
        try:
            self.transport.send(payload)
            if self._outbox:  # the link works again: send what waited
                self._flush_outbox()
        except TransportError as exc:
            with self._outbox_lock:
                self._outbox.append(payload)
            logger.warning(
                "event %s not broadcast yet (%s); queued for reconnection", event.kind, exc
            )

    # -- connection state ------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher(connected)`` now and on every change of connection state."""
        self._watchers.append(watcher)
        watcher(self.connected)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"runtools-events-{self.transport.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._set_connected(False)
        self.transport.close()

    def _run(self) -> None:
        delay = self._first_retry
        while not self._stop.is_set():
            try:
                self.transport.listen(self._receive, self._subscribed, self._stop)
            except TransportError as exc:
                if self.connected:
                    logger.warning("event connection lost (%s); reconnecting", exc)
                elif not self._announced:  # never connected yet: say so once, not per retry
                    logger.warning("event connection not established (%s); retrying", exc)
            except Exception:  # never let the listener die: it is what keeps caches honest
                logger.exception("event listener failed; reconnecting")
            was_connected = self.connected
            self._set_connected(False)
            if was_connected:
                delay = self._first_retry
            self._stop.wait(delay)
            delay = min(delay * 2, self._max_retry)

    def _subscribed(self) -> None:
        self._set_connected(True)
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        with self._outbox_lock:
            while self._outbox:
                payload = self._outbox[0]
                try:
                    self.transport.send(payload)
                except TransportError:
                    return
                self._outbox.popleft()

    def _receive(self, payload: str) -> None:
        try:
            envelope = decode(payload)
        except UndecodableEvent:
            logger.warning("ignored a payload on the event channel that is not an event")
            return
        if envelope.origin == self.node_id:
            return  # delivered here when published
        self.received += 1
        self._local.publish(envelope.event)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected and self._announced:
            return
        self._announced = True
        self.connected = connected
        logger.info(
            json.dumps(
                {
                    "event": "event_connection",
                    "transport": self.transport.name,
                    "connected": connected,
                }
            )
        )
        for watcher in self._watchers:
            try:
                watcher(connected)
            except Exception:
                logger.exception("connection watcher failed")
