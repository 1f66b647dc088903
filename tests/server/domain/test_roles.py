from runtools.server.domain.roles import effective_scopes, role_permits


def test_admins_may_use_every_scope() -> None:
    assert role_permits("admin", "org:members")
    assert effective_scopes(["*"], "admin") == ["*"]


def test_members_cannot_use_administrative_scopes_whatever_the_key_says() -> None:
    assert not role_permits("member", "org:members")
    assert not role_permits("member", "admin:*")
    assert role_permits("member", "sandbox:exec")
    scopes = effective_scopes(["*"], "member")
    assert "*" not in scopes
    assert "org:members" not in scopes
    assert "admin:*" not in scopes
    assert "sandbox:*" in scopes
    assert "sandbox:read" not in scopes  # covered by the wildcard
    assert effective_scopes(["sandbox:read", "org:write"], "member") == ["sandbox:read"]


def test_no_role_means_no_rights() -> None:
    assert not role_permits("", "sandbox:read")
    assert effective_scopes(["*"], "") == []


def test_a_members_star_does_not_stand_for_a_service_scope() -> None:
    assert "auth:verify" not in effective_scopes(["*"], "member")
    assert effective_scopes(["*", "auth:verify"], "member").count("auth:verify") == 1
    assert effective_scopes(["auth:verify"], "member") == ["auth:verify"]
