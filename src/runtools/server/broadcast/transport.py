"""What a broadcast transport must do: send one payload, or listen until the link breaks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class TransportError(Exception):
    """The transport's connection failed; the bus reconnects."""


class Transport(Protocol):
    name: str

    def send(self, payload: str) -> None:
        """Publish to every listening node; raises ``TransportError`` if it cannot."""

    def listen(
        self,
        deliver: Callable[[str], None],
        subscribed: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        """Connect, subscribe, call ``subscribed()``, then ``deliver`` each payload.

        Returns when ``stop`` is set; raises ``TransportError`` when the
        connection is lost (including a silent peer: transports check liveness).
        """

    def close(self) -> None: ...
