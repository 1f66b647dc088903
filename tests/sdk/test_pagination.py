"""Pagers walk cursors to the end, and stop when a server misbehaves."""

from __future__ import annotations

import pytest

from runtools import AsyncPager, CursorPage, SyncPager

PAGES = {
    None: CursorPage(data=[1, 2], has_more=True, next_cursor="b"),
    "b": CursorPage(data=[3, 4], has_more=True, next_cursor="c"),
    "c": CursorPage(data=[5], has_more=False, next_cursor=None),
}


def fetch(cursor: str | None) -> CursorPage[int]:
    return PAGES[cursor]


async def afetch(cursor: str | None) -> CursorPage[int]:
    return PAGES[cursor]


def test_iterating_yields_items_across_pages() -> None:
    assert list(SyncPager(fetch)) == [1, 2, 3, 4, 5]


def test_a_pager_can_start_from_a_cursor() -> None:
    assert list(SyncPager(fetch, cursor="b")) == [3, 4, 5]
    assert SyncPager(fetch, cursor="c").first_page().data == [5]


def test_a_page_iterates_its_own_items() -> None:
    page = PAGES[None]
    assert list(page) == [1, 2]
    assert len(page) == 2


def test_has_more_without_a_cursor_ends_the_walk() -> None:
    broken = CursorPage(data=[1], has_more=True, next_cursor=None)
    assert list(SyncPager(lambda cursor: broken)) == [1]


def test_a_repeated_cursor_ends_the_walk() -> None:
    def looping(cursor: str | None) -> CursorPage[int]:
        return CursorPage(data=[1], has_more=True, next_cursor="same")

    assert list(SyncPager(looping)) == [1, 1]


@pytest.mark.anyio
async def test_async_pager_matches_the_sync_one() -> None:
    pager = AsyncPager(afetch)
    assert [item async for item in pager] == [1, 2, 3, 4, 5]
    assert [page.data async for page in pager.pages()] == [[1, 2], [3, 4], [5]]
    assert (await pager.first_page()).next_cursor == "b"
