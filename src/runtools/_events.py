"""Server-Sent Events, read line by line: ``event:`` and ``data:`` fields only.

The server sends one JSON ``data`` line per event; anything that is not
JSON is passed on as ``{"data": text}``. Comments and ``id``/``retry``
fields are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["EVENT_STREAM", "EventParser"]

EVENT_STREAM = "text/event-stream"


class EventParser:
    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Take one line (without its newline); yield an event when a blank line ends it."""
        if line == "":
            if self._data:
                text = "\n".join(self._data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"data": text}
                yield self._event, payload if isinstance(payload, dict) else {"data": payload}
            self._event, self._data = "message", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
