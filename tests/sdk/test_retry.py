"""The retry policy's arithmetic, without a network or a clock."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from runtools._retry import (
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    backoff_delay,
    is_retry_safe,
    is_retryable_status,
    parse_retry_after,
    retry_delay,
)

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 201, 301, 400, 401, 403, 404, 405, 413, 422])
def test_answers_that_will_not_change_are_not_retried(status: int) -> None:
    assert not is_retryable_status(status)


@pytest.mark.parametrize("method", ["GET", "get", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"])
def test_idempotent_methods_are_safe_to_repeat(method: str) -> None:
    assert is_retry_safe(method, httpx.Headers())


def test_post_is_safe_to_repeat_only_with_an_idempotency_key() -> None:
    assert not is_retry_safe("POST", httpx.Headers())
    assert is_retry_safe("POST", httpx.Headers({"idempotency-key": "abc"}))


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("0") == 0.0


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:07 GMT", now=NOW) == 7.0


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=NOW) == 0.0
    assert parse_retry_after("-5") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Wed, 99 Foo"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_doubles_from_half_a_second() -> None:
    no_jitter = [backoff_delay(n, random=lambda: 0.0) for n in range(4)]
    assert no_jitter == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped() -> None:
    assert backoff_delay(30, random=lambda: 0.0) == MAX_RETRY_DELAY


def test_jitter_shortens_the_wait_by_at_most_a_quarter() -> None:
    assert backoff_delay(1, random=lambda: 0.999999) == pytest.approx(0.75, abs=1e-5)


def test_retry_delay_gives_up_after_max_retries() -> None:
    def delay(taken: int) -> float | None:
        return retry_delay(retries_taken=taken, max_retries=2, retry_after=None, random=lambda: 0)

    assert delay(0) == 0.5
    assert delay(1) == 1.0
    assert delay(2) is None


def test_zero_max_retries_never_retries() -> None:
    assert retry_delay(retries_taken=0, max_retries=0, retry_after=1, random=lambda: 0) is None


def test_retry_after_replaces_backoff() -> None:
    assert retry_delay(retries_taken=0, max_retries=2, retry_after=3, random=lambda: 0) == 3
    assert retry_delay(retries_taken=0, max_retries=2, retry_after=0, random=lambda: 0) == 0


def test_retry_after_longer_than_the_cap_is_left_to_the_caller() -> None:
    assert (
        retry_delay(retries_taken=0, max_retries=2, retry_after=MAX_RETRY_AFTER, random=lambda: 0)
        == MAX_RETRY_AFTER
    )
    over = MAX_RETRY_AFTER + 1
    assert retry_delay(retries_taken=0, max_retries=2, retry_after=over, random=lambda: 0) is None
