"""Cursor paging: one page, and pagers that walk every page.

A list call returns a pager without touching the network. Iterating it
yields items across all pages, fetching each page when the previous one is
used up; ``first_page()`` and ``pages()`` give one page at a time for
callers that want to stop, show progress, or keep the cursor::

    for key in rt.api_keys.list():            # every key, page by page
        ...
    page = rt.api_keys.list(limit=10).first_page()
    page.data, page.has_more, page.next_cursor

The ``limit`` of a list call is the page size, not a total.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["AsyncPager", "CursorPage", "SyncPager"]

ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class CursorPage(Generic[ItemT]):
    """One page of a list: its items and where the next page starts."""

    data: list[ItemT]
    has_more: bool = False
    next_cursor: str | None = None
    request_id: str | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def next_page_cursor(self) -> str | None:
        """The cursor for the next page, or None when this is the last.

        A page claiming more without giving a cursor is treated as the last.
        """
        if not self.has_more or not self.next_cursor:
            return None
        return self.next_cursor


SyncFetch = Callable[[str | None], CursorPage[ItemT]]
AsyncFetch = Callable[[str | None], Awaitable[CursorPage[ItemT]]]


class SyncPager(Generic[ItemT]):
    """Iterate a list across pages (``for item in pager``)."""

    def __init__(self, fetch: SyncFetch[ItemT], *, cursor: str | None = None) -> None:
        self._fetch = fetch
        self._start_cursor = cursor

    def first_page(self) -> CursorPage[ItemT]:
        return self._fetch(self._start_cursor)

    def pages(self) -> Iterator[CursorPage[ItemT]]:
        cursor = self._start_cursor
        # A cursor handed back twice would loop forever; a server bug must not hang us.
        seen: set[str] = {cursor} if cursor else set()
        while True:
            page = self._fetch(cursor)
            yield page
            cursor = page.next_page_cursor
            if cursor is None or cursor in seen:
                return
            seen.add(cursor)

    def __iter__(self) -> Iterator[ItemT]:
        for page in self.pages():
            yield from page.data


class AsyncPager(Generic[ItemT]):
    """Iterate a list across pages (``async for item in pager``)."""

    def __init__(self, fetch: AsyncFetch[ItemT], *, cursor: str | None = None) -> None:
        self._fetch = fetch
        self._start_cursor = cursor

    async def first_page(self) -> CursorPage[ItemT]:
        return await self._fetch(self._start_cursor)

    async def pages(self) -> AsyncIterator[CursorPage[ItemT]]:
        cursor = self._start_cursor
        # A cursor handed back twice would loop forever; a server bug must not hang us.
        seen: set[str] = {cursor} if cursor else set()
        while True:
            page = await self._fetch(cursor)
            yield page
            cursor = page.next_page_cursor
            if cursor is None or cursor in seen:
                return
            seen.add(cursor)

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        async for page in self.pages():
            for item in page.data:
                yield item
