"""Credential events reach every node within the bound, over real Redis and PostgreSQL.

Two buses stand for two nodes. A node that loses its event link says so
(the cache shortens its trust) and, once back, announces the reconnection
(the cache forgets everything) and sends what it could not send before.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from runtools.server.broadcast import BroadcastEventBus, Transport
from runtools.server.broadcast.postgres_transport import PostgresTransport
from runtools.server.broadcast.redis_transport import RedisTransport
from runtools.server.domain.events import CredentialEvent, EventKind
from support.live_server import free_port
from support.private_services import PrivatePostgres, PrivateRedis

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
BOUND_SECONDS = 0.1


class Inbox:
    def __init__(self) -> None:
        self.events: list[CredentialEvent] = []
        self.arrived = threading.Event()

    def __call__(self, event: CredentialEvent) -> None:
        self.events.append(event)
        self.arrived.set()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def channel() -> str:
    return f"t_{secrets.token_hex(6)}_events"


def node(transport: Transport) -> tuple[BroadcastEventBus, Inbox]:
    bus = BroadcastEventBus(transport, first_retry=0.05, max_retry=0.2)
    inbox = Inbox()
    bus.subscribe(inbox)
    bus.start()
    return bus, inbox


def watched_pair(
    make: Callable[[], Transport],
) -> tuple[BroadcastEventBus, BroadcastEventBus, Inbox, list[bool]]:
    """Nodes A and B on one link, with B's inbox and every connection state B announced."""
    a, _ = node(make())
    b, b_inbox = node(make())
    states: list[bool] = []
    b.watch(states.append)
    return a, b, b_inbox, states


@pytest.fixture(params=["redis", "postgres"])
def transports(request: pytest.FixtureRequest) -> Iterator[Callable[[], Transport]]:
    name = channel()
    if request.param == "redis":
        yield lambda: RedisTransport(LOCAL_REDIS, name)
    else:
        psycopg.connect(LOCAL_POSTGRES, connect_timeout=2).close()
        yield lambda: PostgresTransport(LOCAL_POSTGRES, name)


def test_a_revocation_reaches_the_other_node_within_100ms(
    transports: Callable[[], Transport],
) -> None:
    a, _ = node(transports())
    b, b_inbox = node(transports())
    try:
        wait_for(lambda: a.connected and b.connected)
        delays = []
        for i in range(20):
            b_inbox.arrived.clear()
            sent = time.perf_counter()
            a.publish(CredentialEvent(EventKind.KEY_REVOKED, "org_1", key_id=f"key_{i}"))
            assert b_inbox.arrived.wait(2)
            delays.append(time.perf_counter() - sent)
        assert [e.key_id for e in b_inbox.events] == [f"key_{i}" for i in range(20)]
        assert sorted(delays)[len(delays) // 2] < BOUND_SECONDS
    finally:
        a.stop()
        b.stop()


def test_the_publishing_node_forgets_at_once_and_ignores_its_own_echo(
    transports: Callable[[], Transport],
) -> None:
    a, a_inbox = node(transports())
    b, b_inbox = node(transports())
    try:
        wait_for(lambda: a.connected and b.connected)
        event = CredentialEvent(EventKind.SESSION_REVOKED, "org_1", session_id="ses_1")
        a.publish(event)
        assert a_inbox.events == [event]  # synchronously, before publish returned
        assert b_inbox.arrived.wait(2)
        time.sleep(0.2)
        assert a_inbox.events == [event]
        assert b_inbox.events == [event]
    finally:
        a.stop()
        b.stop()


def test_losing_redis_is_announced_and_reconnection_restores_delivery(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis").start()
    name = channel()
    a, b, b_inbox, states = watched_pair(lambda: RedisTransport(server.url, name, timeout=0.5))
    try:
        wait_for(lambda: a.connected and b.connected)
        server.stop()
        wait_for(lambda: not b.connected, timeout=5)
        # Published while Redis is down: delivered here, queued for the others.
        a.publish(CredentialEvent(EventKind.KEY_REVOKED, "org_1", key_id="key_during"))
        # Pub/sub is not durable: only nodes subscribed when A reconnects get the queued
        # event. Those that reconnect later missed it, and forget their whole cache instead
        # (the watcher sees True again). Hold A back so B is the former kind here.
        a.stop()
        server.start()
        wait_for(lambda: b.connected, timeout=10)
        assert states[-3:] == [True, False, True]
        a.start()
        wait_for(lambda: any(e.key_id == "key_during" for e in b_inbox.events), timeout=10)
    finally:
        a.stop()
        b.stop()
        server.stop()


def test_after_a_database_restart_the_next_revocation_goes_out_at_once() -> None:
    # Without Redis: A's publishing connection dates from before the restart. Queuing the
    # event on its failure left B trusting its cache until A happened to publish again.
    postgres = PrivatePostgres().init().start()
    name = channel()
    a, b, b_inbox, states = watched_pair(lambda: PostgresTransport(postgres.url, name, timeout=0.5))
    try:
        wait_for(lambda: a.connected and b.connected)
        a.publish(CredentialEvent(EventKind.KEY_REVOKED, "org_1", key_id="key_before"))
        assert b_inbox.arrived.wait(2)
        postgres.stop()
        postgres.start()
        wait_for(lambda: states[-2:] == [False, True], timeout=15)  # B listens again
        b_inbox.arrived.clear()
        a.publish(CredentialEvent(EventKind.KEY_REVOKED, "org_1", key_id="key_after"))
        assert b_inbox.arrived.wait(2), "the revocation was held back"
        assert b_inbox.events[-1].key_id == "key_after"
    finally:
        a.stop()
        b.stop()
        postgres.remove()


def test_a_link_that_never_came_up_is_said_once_not_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    caplog.set_level(logging.INFO, logger="runtools.events")
    bus, _ = node(RedisTransport(nobody, channel(), timeout=0.2))
    try:
        time.sleep(1.0)  # several retries at 0.05-0.2 s
    finally:
        bus.stop()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("event connection not established")]) == 1
    assert (
        said.count(
            json.dumps({"event": "event_connection", "transport": "redis", "connected": False})
        )
        == 1
    )


def test_a_foreign_payload_on_the_channel_is_ignored() -> None:
    import redis

    name = channel()
    bus, inbox = node(RedisTransport(LOCAL_REDIS, name))
    try:
        wait_for(lambda: bus.connected)
        redis.Redis.from_url(LOCAL_REDIS).publish(name, "not json")
        bus.publish(CredentialEvent(EventKind.KEY_CHANGED, "org_1", key_id="k"))
        time.sleep(0.2)
        assert [e.key_id for e in inbox.events] == ["k"]
        assert bus.connected
    finally:
        bus.stop()
