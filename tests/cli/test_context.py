"""``api_errors``: an SDK error becomes one line on stderr and the exit code of its class."""

from __future__ import annotations

import httpx
import pytest
import typer

from runtools import RateLimitError
from runtools.cli.context import api_errors


def _rate_limited(message: str) -> RateLimitError:
    request = httpx.Request("POST", "http://127.0.0.1:8700/v1/auth/device/approve")
    response = httpx.Response(429, request=request, headers={"Retry-After": "286"})
    return RateLimitError(
        message, response=response, code="rate_limited", request_id="req_x", retry_after=286
    )


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("Too many wrong codes; retry in 286s", "Too many wrong codes; retry in 286s"),
        ("Slow down", "Slow down; retry in 286s"),  # a server that does not say when
    ],
)
def test_a_429_says_when_to_retry_once(
    capsys: pytest.CaptureFixture[str], message: str, said: str
) -> None:
    with pytest.raises(typer.Exit) as exited, api_errors(as_json=False):
        raise _rate_limited(message)
    assert exited.value.exit_code == 3
    assert capsys.readouterr().err == f"error: {said} (request req_x)\n"
