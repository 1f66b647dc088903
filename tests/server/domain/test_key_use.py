"""Where a key may be used from: browsers, and address allowlists as networks."""

from __future__ import annotations

import pytest

from runtools.server.domain.key_use import (
    MAX_CIDRS,
    CidrError,
    address_allowed,
    networks_of,
    normalized_cidrs,
    sent_from_browser,
)


def test_a_request_with_a_browsers_own_headers_is_from_a_browser() -> None:
    assert sent_from_browser({"origin": "https://app.example.com"})
    assert sent_from_browser({"sec-fetch-site": "none"})
    assert not sent_from_browser({"user-agent": "Mozilla/5.0", "referer": "https://x"})


def test_an_allowlist_is_stored_canonical_without_duplicates() -> None:
    assert normalized_cidrs([" 10.0.0.0/8", "10.0.0.0/8", "2001:DB8::/32", "192.0.2.1"]) == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.1/32",
    ]
    assert normalized_cidrs([]) == []


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "10.0.0.0/33", "", "localhost", "10.0.0.0/8/8"])
def test_what_is_not_a_network_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(CidrError, match="allowedCidrs"):
        normalized_cidrs([bad])


def test_an_allowlist_has_a_bound() -> None:
    many = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_CIDRS + 1)]
    with pytest.raises(CidrError, match=f"at most {MAX_CIDRS}"):
        normalized_cidrs(many)


def test_an_address_is_allowed_only_inside_a_listed_network() -> None:
    networks = networks_of(["203.0.113.0/24", "2001:db8::/32"])
    assert address_allowed((), None)  # no allowlist: anywhere
    assert address_allowed(networks, "203.0.113.255")
    assert address_allowed(networks, "2001:db8:ffff::1")
    assert address_allowed(networks, "::ffff:203.0.113.1")  # IPv4 seen through IPv6
    for outside in ("203.0.114.0", "2001:db9::1", "::1", None, "testclient", ""):
        assert not address_allowed(networks, outside)
