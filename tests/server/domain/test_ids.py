"""Ids and request ids: their shape, uniqueness and the uniformity of their random part."""

from __future__ import annotations

import re
from collections import Counter

from runtools.server.domain.ids import BASE62, new_id, new_request_id, random_base62


def test_request_ids_are_req_and_24_base62_characters() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"req_[0-9A-Za-z]{24}", i) for i in ids)


def test_ids_order_by_creation_time() -> None:
    first, second = new_id("key"), new_id("key")
    assert re.fullmatch(r"key_[0-9A-Za-z]{22}", first)
    assert first[:12] <= second[:12]


def test_every_position_is_uniform_over_base62() -> None:
    # A biased reduction shows first in the leading or trailing character.
    samples = [random_base62(24) for _ in range(31_000)]
    for position in (0, 11, 23):
        counts = Counter(s[position] for s in samples)
        assert set(counts) == set(BASE62)
        expected = len(samples) / 62  # 500; a standard deviation is ~22
        assert all(abs(n - expected) < 150 for n in counts.values()), counts


def test_short_and_long_lengths() -> None:
    assert len(random_base62(1)) == 1
    assert len(random_base62(64)) == 64
