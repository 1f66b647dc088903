"""Where a sandbox of another node is, remembered so forwarding skips the database.

A sandbox never moves: the node that started it holds it until it is
destroyed or its node is lost. So once this node has looked a sandbox up and
found it held elsewhere, the next exec or file call for the same id goes
straight to that node, with no transaction here. The entry says where to
send a call, never whether the caller may make it: the holder authenticates
and authorizes every forwarded call itself, from the caller's own
credential, against the shared database (another organization's sandbox is
its 404, a missing scope its 403).

Entries are keyed by sandbox id only (names are per organization and can be
reused; ids cannot, and no name looks like an id). An entry is dropped when
the holder does not answer, answers that it has no such sandbox or that the
sandbox cannot be used (404, 409), when the sandbox is destroyed through
this node, when this node declares the holder lost, and at the latest
``ttl_seconds`` after it was noted. The table is bounded; the oldest entries
go first.

Not here: the lookup itself (``service``), sending the call (the API).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Location", "Locations"]


@dataclass(frozen=True)
class Location:
    node: str
    url: str


class Locations:
    """Sandbox id -> the node holding it; safe to use from worker threads."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[Location, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sandbox_id: str) -> Location | None:
        with self._lock:
            entry = self._entries.get(sandbox_id)
            if entry is None:
                return None
            holder, expires = entry
            if time.monotonic() >= expires:
                del self._entries[sandbox_id]
                return None
            return holder

    def note(self, sandbox_id: str, holder: Location) -> None:
        with self._lock:
            self._entries[sandbox_id] = (holder, time.monotonic() + self._ttl)
            self._entries.move_to_end(sandbox_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, sandbox_id: str) -> None:
        with self._lock:
            self._entries.pop(sandbox_id, None)

    def forget_node(self, node: str) -> None:
        with self._lock:
            for sandbox_id in [k for k, (h, _) in self._entries.items() if h.node == node]:
                del self._entries[sandbox_id]
