"""Redis pub/sub: one channel per deployment, fire-and-forget, milliseconds end to end.

The listener pings through its subscription every second and gives up on
the connection when no pong comes back, so a silent network failure is
noticed in about ``liveness_seconds``, not at the next TCP timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from runtools.server.broadcast.transport import TransportError


class RedisTransport:
    name = "redis"

    def __init__(
        self,
        url: str,
        channel: str,
        *,
        timeout: float = 1.0,
        liveness_seconds: float = 3.0,
    ) -> None:
        self._url = url
        self._channel = channel
        self._timeout = timeout
        self._liveness = liveness_seconds
        self._publisher = self._client()

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
        )

    def send(self, payload: str) -> None:
        try:
            self._publisher.publish(self._channel, payload)
        except redis.RedisError as exc:
            raise TransportError(f"redis publish failed: {type(exc).__name__}") from exc

    def listen(
        self,
        deliver: Callable[[str], None],
        subscribed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        client = self._client()
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
            self._await_subscription(pubsub)
            subscribed()
            last_pong = last_ping = time.monotonic()
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.25)
                now = time.monotonic()
                if message is not None:
                    if message["type"] == "message":
                        deliver(message["data"].decode())
                    elif message["type"] == "pong":
                        last_pong = now
                if now - last_ping >= 1.0:
                    pubsub.ping()
                    last_ping = now
                if now - last_pong > self._liveness:
                    raise TransportError("redis subscription stopped answering pings")
        except redis.RedisError as exc:
            raise TransportError(f"redis subscription lost: {type(exc).__name__}") from exc
        finally:
            try:
                pubsub.close()
            finally:
                client.close()

    def _await_subscription(self, pubsub: redis.client.PubSub) -> None:
        deadline = time.monotonic() + self._timeout * 5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.25)
            if message is not None and message["type"] == "subscribe":
                return
        raise TransportError("redis did not confirm the subscription")

    def close(self) -> None:
        self._publisher.close()
