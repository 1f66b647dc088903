"""What every resource class shares: a reference to its client, and safe paths."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from runtools._client import AsyncRunTools, RunTools

__all__ = ["AsyncResource", "SyncResource", "path_segment"]


def path_segment(value: str, *, name: str = "id") -> str:
    """``value`` escaped for use as one path segment.

    Ids come from callers and command lines; escaping keeps ``"../me"`` or
    ``"a/b"`` from addressing a different endpoint.
    """
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


class SyncResource:
    def __init__(self, client: RunTools) -> None:
        self._client = client


class AsyncResource:
    def __init__(self, client: AsyncRunTools) -> None:
        self._client = client
