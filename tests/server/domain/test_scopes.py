import pytest

from runtools.server.domain.scopes import UnknownScopeError, covers, is_subset, normalize


def test_every_documented_scope_is_in_the_catalog() -> None:
    documented = [
        "*",
        "sandbox:*",
        "agent:*",
        "agent:run",
        "workflow:*",
        "tool:*",
        "ssh-key:*",
        "files:*",
        "template:*",
        "sandbox:read",
        "sandbox:create",
        "sandbox:write",
        "sandbox:exec",
        "ssh-key:read",
        "ssh-key:write",
    ]
    assert normalize(documented) == ["*"]
    for scope in documented:
        assert normalize([scope]) == [scope]


def test_empty_scopes_mean_everything() -> None:
    assert normalize([]) == ["*"]
    assert normalize(None) == ["*"]


def test_unknown_scopes_are_refused_with_the_valid_ones_listed() -> None:
    with pytest.raises(UnknownScopeError) as raised:
        normalize(["sandbox:read", "sandbox:destroy", "root"])
    assert raised.value.unknown == ["root", "sandbox:destroy"]
    assert "sandbox:exec" in str(raised.value)


def test_wildcards_cover_their_resource_only() -> None:
    assert covers(["*"], "sandbox:exec")
    assert covers(["*"], "*")
    assert covers(["sandbox:*"], "sandbox:exec")
    assert covers(["sandbox:*"], "sandbox:*")
    assert not covers(["sandbox:*"], "*")
    assert not covers(["sandbox:*"], "ssh-key:read")
    assert not covers(["sandbox:read"], "sandbox:exec")
    assert not covers(["sandbox:read"], "sandbox:*")
    assert not covers([], "sandbox:read")


def test_is_subset_names_what_is_not_covered() -> None:
    assert is_subset(["sandbox:read", "sandbox:exec"], ["sandbox:*"]) == []
    assert is_subset(["*"], ["sandbox:*"]) == ["*"]
    assert is_subset(["sandbox:read", "files:read"], ["sandbox:read"]) == ["files:read"]


def test_a_service_scope_is_covered_only_by_itself() -> None:
    assert not covers(["*"], "auth:verify")
    assert covers(["auth:verify"], "auth:verify")
    assert covers(["*", "auth:verify"], "auth:verify")
    assert not covers(["auth:verify"], "tool:*")
    assert is_subset(["auth:verify"], ["*"]) == ["auth:verify"]


def test_star_beside_a_service_scope_keeps_it_named() -> None:
    assert normalize(["auth:verify", "*", "tool:*"]) == ["*", "auth:verify"]
    assert normalize(["auth:verify"]) == ["auth:verify"]
