"""A page of a listing and the bounds on its size, whatever the listing is of.

Routers take ``limit`` within these bounds, services return a ``Page``,
repositories fill it; how a cursor encodes a position is the repository's
business (``store/pagination.py`` and its callers), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page"]

T = TypeVar("T")

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None
