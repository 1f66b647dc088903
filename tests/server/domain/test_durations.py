from datetime import timedelta

import pytest

from runtools.server.domain.durations import DurationError, parse_duration

YEARS_5 = timedelta(days=5 * 365)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("1y", timedelta(days=365)),
        ("5y", timedelta(days=5 * 365)),
    ],
)
def test_accepted_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, maximum=YEARS_5) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0d",
        "-1d",
        "+1d",
        "1.5d",
        "30",
        "d",
        "30m",
        "30s",
        "1 d",
        " 1d",
        "1D",
        "99999999999999999999d",
        "6y",
        "1000000h",
        "\uff11d",
    ],
)
def test_refused_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text, maximum=YEARS_5)


def test_zero_only_where_allowed() -> None:
    assert parse_duration("0", maximum=YEARS_5, allow_zero=True) == timedelta(0)
