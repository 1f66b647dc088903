"""The API-key half of the wire contract, as a client sees it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.store.models import ApiKeyUsage
from support.secret_registry import SecretRegistry
from support.tenants import Member


def _strip_request_id(body: dict[str, Any]) -> dict[str, Any]:
    body["error"].pop("requestId")
    return body


def test_create_returns_the_secret_once_with_a_message(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    response = admin.post(
        "/v1/api-keys", json={"name": "ci", "scopes": ["sandbox:*"], "expiresIn": "30d"}
    )
    assert response.status_code == 201
    body = response.json()
    data = body["data"]
    secret_registry.add(data["key"])
    assert data["key"].startswith("rt_live_")
    assert data["keyPrefix"] == data["key"][:12]
    assert data["scopes"] == ["sandbox:*"]
    assert data["status"] == "active"
    assert data["ownerEmail"] == "ada@example.com"
    assert data["ownerUserId"] == admin.user_id
    assert (data["orgId"], data["orgName"]) == (admin.org_id, "acme")
    assert data["expiresAt"].startswith("2026-02-14")
    assert "store" in body["message"].lower()
    assert body["meta"]["requestId"].startswith("req_")

    key_id, secret = data["id"], data["key"]
    for later in (
        admin.get(f"/v1/api-keys/{key_id}"),
        admin.get("/v1/api-keys"),
        admin.patch(f"/v1/api-keys/{key_id}", json={"name": "renamed"}),
        admin.delete(f"/v1/api-keys/{key_id}"),
    ):
        assert later.status_code == 200
        assert secret not in later.text
        assert '"key"' not in later.text


def test_the_new_key_authenticates_with_either_header(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, name="ci", scopes=["sandbox:read"])["key"]
    by_header = admin.http.get("/v1/me", headers={"X-API-Key": key})
    by_bearer = admin.http.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert by_header.status_code == by_bearer.status_code == 200
    me = by_header.json()["data"]
    assert me["credential"]["scopes"] == ["sandbox:read"]
    assert me["effectiveScopes"] == ["sandbox:read"]
    assert me["organization"] == {"id": admin.org_id, "name": "acme"}
    assert me["user"]["email"] == "ada@example.com"
    assert me["user"]["role"] == "admin"
    assert me["credential"]["type"] == "api_key"


def test_two_different_credentials_in_one_request_are_refused(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    other = admin.create_key(secret_registry)["key"]
    response = admin.http.get(
        "/v1/me", headers={"X-API-Key": admin.key, "Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    same = admin.http.get(
        "/v1/me", headers={"X-API-Key": admin.key, "Authorization": f"Bearer {admin.key}"}
    )
    assert same.status_code == 200


def test_empty_scopes_mean_everything(admin: Member, secret_registry: SecretRegistry) -> None:
    assert admin.create_key(secret_registry, scopes=[])["scopes"] == ["*"]


def test_unknown_scope_is_a_400_listing_valid_ones(admin: Member) -> None:
    response = admin.post("/v1/api-keys", json={"name": "x", "scopes": ["sandbox:destroy"]})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "sandbox:destroy" in message
    assert "sandbox:exec" in message


def test_bad_expiry_is_a_400_and_stores_nothing(admin: Member) -> None:
    for bad in ["0d", "-1d", "30m", "1.5d", "", "99999y", "forever"]:
        response = admin.post("/v1/api-keys", json={"name": "x", "expiresIn": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] in {"invalid_request", "validation_error"}
    listed = admin.get("/v1/api-keys").json()["data"]
    assert [k["name"] for k in listed] == ["bootstrap"]


def test_revoked_expired_malformed_and_unknown_keys_get_identical_401s(
    admin: Member, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    revoked = admin.create_key(secret_registry, name="revoked")
    assert admin.delete(f"/v1/api-keys/{revoked['id']}").status_code == 200
    expiring = admin.create_key(secret_registry, name="expiring", expiresIn="1h")
    clock.advance(timedelta(hours=2))
    from runtools.server.domain.keys import generate_key

    unknown = generate_key(is_test=False).plaintext
    malformed = revoked["key"][:-1] + ("A" if revoked["key"][-1] != "A" else "B")

    responses = [
        admin.http.get("/v1/me", headers={"X-API-Key": token})
        for token in (revoked["key"], expiring["key"], unknown, malformed, "garbage", "")
    ]
    responses.append(admin.http.get("/v1/me"))
    responses.append(admin.http.get("/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="}))
    assert {r.status_code for r in responses} == {401}
    bodies = [_strip_request_id(r.json()) for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0] == {
        "error": {"code": "unauthorized", "message": "Invalid or missing authentication"}
    }
    assert (
        len(
            {
                tuple(
                    sorted(
                        (k, v) for k, v in r.headers.items() if k not in {"x-request-id", "date"}
                    )
                )
                for r in responses
            }
        )
        == 1
    )


def test_authentication_failures_are_audited_with_their_true_reason(
    admin: Member, secret_registry: SecretRegistry, clock: FrozenClock, runtime: Runtime
) -> None:
    revoked = admin.create_key(secret_registry, name="old")
    admin.delete(f"/v1/api-keys/{revoked['id']}")
    admin.http.get("/v1/me", headers={"X-API-Key": revoked["key"], "User-Agent": "probe/1"})
    admin.http.get("/v1/me", headers={"X-API-Key": revoked["key"][:-1] + "!"})
    runtime.flush()
    events = admin.get("/v1/audit-logs", params={"action": "auth.failed"}).json()["data"]
    assert len(events) == 1  # the malformed one names no key, so it belongs to no org
    event = events[0]
    assert event["reason"] == "revoked"
    assert event["targetId"] == revoked["id"]
    assert event["details"]["keyPrefix"] == revoked["keyPrefix"]
    assert event["userAgent"] == "probe/1"
    assert event["ip"]
    assert revoked["key"] not in str(events)


def test_revocation_takes_effect_on_the_next_request(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry)
    assert admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).status_code == 200
    revoked = admin.delete(f"/v1/api-keys/{key['id']}")
    assert revoked.json()["data"]["status"] == "revoked"
    assert admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).status_code == 401


def test_rotation_without_grace_revokes_the_old_key_now(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    old = admin.create_key(secret_registry, name="deploy", scopes=["sandbox:*"])
    admin.http.get("/v1/me", headers={"X-API-Key": old["key"]})  # warm the cache
    response = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"name": "deploy-2"})
    assert response.status_code == 201
    new = response.json()["data"]
    secret_registry.add(new["key"])
    assert new["name"] == "deploy-2"
    assert new["scopes"] == ["sandbox:*"]
    assert new["rotatedFromId"] == old["id"]
    assert new["key"] != old["key"]
    assert "store" in response.json()["message"].lower()
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401
    assert admin.http.get("/v1/me", headers={"X-API-Key": new["key"]}).status_code == 200
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "revoked"


def test_rotation_with_no_body_at_all_is_rotation_with_every_default(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    old = admin.create_key(secret_registry, name="deploy", scopes=["sandbox:*"])
    response = admin.post(f"/v1/api-keys/{old['id']}/rotate")  # every field is optional
    assert response.status_code == 201, response.text
    new = response.json()["data"]
    secret_registry.add(new["key"])
    assert new["name"] == "deploy"
    assert new["scopes"] == ["sandbox:*"]
    assert new["rotatedFromId"] == old["id"]
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "revoked"


def test_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(
    admin: Member, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    old = admin.create_key(secret_registry, name="deploy")
    admin.http.get("/v1/me", headers={"X-API-Key": old["key"]})
    new = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "1h"}).json()["data"]
    secret_registry.add(new["key"])
    listed = admin.get(f"/v1/api-keys/{old['id']}").json()["data"]
    assert listed["status"] == "expiring"
    assert listed["rotatedToId"] == new["id"]
    clock.advance(timedelta(minutes=59))
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401
    assert admin.http.get("/v1/me", headers={"X-API-Key": new["key"]}).status_code == 200
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "revoked"


def test_a_key_that_expires_within_its_grace_reads_expired_once_refused(
    admin: Member, secret_registry: Any, clock: FrozenClock
) -> None:
    old = admin.create_key(secret_registry, name="deploy", expiresIn="1h")
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "24h"})
    secret_registry.add(rotated.json()["data"]["key"])
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "expiring"
    clock.advance(timedelta(hours=2))  # past its expiry, within the rotation's grace
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "expired"
    renamed = admin.patch(f"/v1/api-keys/{old['id']}", json={"name": "still-deploy"})
    assert renamed.status_code == 409
    assert renamed.json()["error"]["code"] == "conflict"


def test_a_rotated_or_revoked_key_cannot_be_rotated_again(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    old = admin.create_key(secret_registry)
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "24h"})
    secret_registry.add(rotated.json()["data"]["key"])
    again = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "create a new key" in again.json()["error"]["message"]


def test_bad_grace_period_is_a_400_and_rotates_nothing(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    old = admin.create_key(secret_registry)
    for bad in ["-1h", "1m", "31d", "soon"]:
        response = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": bad})
        assert response.status_code == 400, bad
    assert admin.get(f"/v1/api-keys/{old['id']}").json()["data"]["status"] == "active"


def test_narrow_credentials_cannot_manage_keys(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    sandbox_only = admin.create_key(secret_registry, scopes=["sandbox:*"])
    for method, path in [
        ("post", "/v1/api-keys"),
        ("get", "/v1/api-keys"),
        ("delete", f"/v1/api-keys/{admin.key_id}"),
    ]:
        denied = admin.http.request(
            method,
            path,
            headers={"X-API-Key": sandbox_only["key"]},
            json={"name": "wider", "scopes": ["*"]} if method == "post" else None,
        )
        assert denied.status_code == 403
        assert denied.json()["error"] == {
            "code": "forbidden",
            "message": "This call requires scope *",
            "requestId": denied.headers["x-request-id"],
        }
    assert admin.http.get("/v1/me", headers={"X-API-Key": admin.key}).status_code == 200


def test_rotation_cannot_carry_scopes_the_owner_may_no_longer_hold(
    admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    from sqlalchemy import update

    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.store.models import Membership

    powerful = admin.create_key(secret_registry, scopes=["admin:*", "sandbox:*"])
    with runtime.database.session() as session:
        session.execute(
            update(Membership).where(Membership.user_id == admin.user_id).values(role="member")
        )
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, admin.org_id, user_id=admin.user_id)
    )
    response = admin.post(f"/v1/api-keys/{powerful['id']}/rotate", json={})
    assert response.status_code == 403
    assert "admin:*" in response.json()["error"]["message"]
    assert admin.get(f"/v1/api-keys/{powerful['id']}").json()["data"]["status"] == "active"


def test_admin_cannot_grant_a_member_scopes_beyond_the_members_role(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    bobs = member.create_key(secret_registry, scopes=["sandbox:read"])
    response = admin.patch(f"/v1/api-keys/{bobs['id']}", json={"scopes": ["org:members"]})
    assert response.status_code == 403
    assert member.get(f"/v1/api-keys/{bobs['id']}").json()["data"]["scopes"] == ["sandbox:read"]


def test_member_cannot_mint_or_grant_admin_scopes(
    member: Member, secret_registry: SecretRegistry
) -> None:
    created = member.post("/v1/api-keys", json={"name": "x", "scopes": ["org:members"]})
    assert created.status_code == 403
    assert "org:members" in created.json()["error"]["message"]
    own = member.create_key(secret_registry, scopes=["sandbox:read"])
    updated = member.patch(f"/v1/api-keys/{own['id']}", json={"scopes": ["admin:*"]})
    assert updated.status_code == 403
    assert member.get(f"/v1/api-keys/{own['id']}").json()["data"]["scopes"] == ["sandbox:read"]


def test_update_changes_scopes_and_the_next_request_sees_them(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, scopes=["sandbox:read", "sandbox:exec"])
    assert admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).json()["data"][
        "effectiveScopes"
    ] == ["sandbox:exec", "sandbox:read"]
    response = admin.patch(
        f"/v1/api-keys/{key['id']}", json={"scopes": ["sandbox:read"], "name": "reader"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "reader"
    me = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).json()["data"]
    assert me["credential"]["scopes"] == ["sandbox:read"]


def test_an_update_never_widens_a_key_to_every_scope_by_omission(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    # On create an empty list means "*"; on update that would silently widen the key.
    key = admin.create_key(secret_registry, scopes=["sandbox:read"])
    empties: list[list[str] | None] = [[], None]
    for empty in empties:
        response = admin.patch(f"/v1/api-keys/{key['id']}", json={"scopes": empty})
        assert response.status_code == 400, empty
        assert '["*"]' in response.json()["error"]["message"]
    assert admin.get(f"/v1/api-keys/{key['id']}").json()["data"]["scopes"] == ["sandbox:read"]
    widened = admin.patch(f"/v1/api-keys/{key['id']}", json={"scopes": ["*"]})
    assert widened.json()["data"]["scopes"] == ["*"]  # said in so many words: fine


def test_patch_null_name_is_refused(admin: Member) -> None:
    response = admin.patch(f"/v1/api-keys/{admin.key_id}", json={"name": None})
    assert response.status_code == 400


def test_members_see_and_manage_only_their_own_keys(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    mine = member.create_key(secret_registry, name="bob-ci")
    admins = admin.create_key(secret_registry, name="ada-ci")
    assert {k["name"] for k in member.get("/v1/api-keys").json()["data"]} == {"bootstrap", "bob-ci"}
    for call in (
        member.get(f"/v1/api-keys/{admins['id']}"),
        member.patch(f"/v1/api-keys/{admins['id']}", json={"name": "mine now"}),
        member.delete(f"/v1/api-keys/{admins['id']}"),
        member.post(f"/v1/api-keys/{admins['id']}/rotate", json={}),
    ):
        assert call.status_code == 404
    all_keys = member.get("/v1/api-keys", params={"all": "true"})
    assert all_keys.status_code == 403
    assert admin.http.get("/v1/me", headers={"X-API-Key": admins["key"]}).status_code == 200
    assert member.delete(f"/v1/api-keys/{mine['id']}").status_code == 200


def test_admins_manage_every_key_of_their_org(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    bobs = member.create_key(secret_registry, name="bob-ci")
    everything = admin.get("/v1/api-keys", params={"all": "true"}).json()["data"]
    assert {k["ownerEmail"] for k in everything} == {"ada@example.com", "bob@example.com"}
    assert {k["name"] for k in admin.get("/v1/api-keys").json()["data"]} == {"bootstrap"}
    assert admin.delete(f"/v1/api-keys/{bobs['id']}").status_code == 200
    assert member.http.get("/v1/me", headers={"X-API-Key": bobs["key"]}).status_code == 401


def test_another_orgs_key_ids_are_404_on_every_id_route(
    admin: Member, outsider: Member, secret_registry: SecretRegistry
) -> None:
    theirs = outsider.create_key(secret_registry)
    calls = [
        admin.get(f"/v1/api-keys/{theirs['id']}"),
        admin.patch(f"/v1/api-keys/{theirs['id']}", json={"name": "pwned"}),
        admin.delete(f"/v1/api-keys/{theirs['id']}"),
        admin.post(f"/v1/api-keys/{theirs['id']}/rotate", json={}),
    ]
    for call in calls:
        assert call.status_code == 404
        assert call.json()["error"]["code"] == "not_found"
    assert outsider.get(f"/v1/api-keys/{theirs['id']}").json()["data"]["name"] == "test key"
    assert admin.get("/v1/api-keys/key_doesnotexist").status_code == 404
    all_keys = admin.get("/v1/api-keys", params={"all": "true"}).json()["data"]
    assert theirs["id"] not in {k["id"] for k in all_keys}


def test_a_key_stops_working_when_its_owner_leaves_the_org(
    member: Member, runtime: Runtime
) -> None:
    from sqlalchemy import delete

    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.store.models import Membership

    assert member.get("/v1/me").status_code == 200
    with runtime.database.session() as session:
        session.execute(delete(Membership).where(Membership.user_id == member.user_id))
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, member.org_id, user_id=member.user_id)
    )
    assert member.get("/v1/me").status_code == 401
    runtime.flush()


def test_a_demoted_admins_keys_lose_admin_powers_at_once(admin: Member, runtime: Runtime) -> None:
    from sqlalchemy import update

    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.store.models import Membership

    assert admin.get("/v1/audit-logs").status_code == 200
    assert admin.get("/v1/me").json()["data"]["user"]["role"] == "admin"  # its body now cached
    with runtime.database.session() as session:
        session.execute(
            update(Membership).where(Membership.user_id == admin.user_id).values(role="member")
        )
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, admin.org_id, user_id=admin.user_id)
    )
    denied = admin.get("/v1/audit-logs")
    assert denied.status_code == 403
    assert denied.json()["error"]["message"] == "This call requires role admin"
    me = admin.get("/v1/me").json()["data"]
    assert me["user"]["role"] == "member"
    assert "*" not in me["effectiveScopes"]


def test_pagination_walks_every_key_once(admin: Member, secret_registry: SecretRegistry) -> None:
    for i in range(7):
        admin.create_key(secret_registry, name=f"k{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/v1/api-keys", params=params).json()
        seen += [k["name"] for k in page["data"]]
        if not page["meta"]["hasMore"]:
            assert page["meta"]["nextCursor"] is None
            break
        cursor = page["meta"]["nextCursor"]
    assert seen == [f"k{i}" for i in reversed(range(7))] + ["bootstrap"]


def test_bad_cursor_and_limit_are_400s(admin: Member) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "a2V5X3g"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
    ):
        response = admin.get("/v1/api-keys", params=params)
        assert response.status_code == 400, params


def test_last_used_at_is_recorded_without_a_write_per_request(
    admin: Member, runtime: Runtime, clock: FrozenClock
) -> None:
    for _ in range(5):
        admin.get("/v1/me")
    assert admin.get(f"/v1/api-keys/{admin.key_id}").json()["data"]["lastUsedAt"] is None
    assert runtime.usage.flush() == 1
    used = admin.get(f"/v1/api-keys/{admin.key_id}").json()["data"]["lastUsedAt"]
    assert used.startswith("2026-01-15T12:00")
    assert runtime.usage.flush() == 1  # the GET just made: counted, lastUsedAt kept
    assert runtime.usage.flush() == 0  # nothing since: nothing to write
    again = admin.get(f"/v1/api-keys/{admin.key_id}").json()["data"]["lastUsedAt"]
    assert again == used
    runtime.usage.flush()
    clock.advance(timedelta(seconds=61))  # a cached key's use in the next minute is noted
    admin.get("/v1/me")
    assert runtime.usage.flush() == 1
    later = admin.get(f"/v1/api-keys/{admin.key_id}").json()["data"]["lastUsedAt"]
    assert later.startswith("2026-01-15T12:01")


def test_verification_costs_no_database_round_trip_in_the_steady_state(
    admin: Member, runtime: Runtime
) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    admin.get("/v1/me")  # first use: one read fills the cache
    event.listen(runtime.database.engine, "before_cursor_execute", count)
    try:
        for _ in range(50):
            assert admin.get("/v1/me").status_code == 200
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", count)
    assert statements == []


def test_an_unreachable_database_fails_closed_with_503(
    admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    fresh = admin.create_key(secret_registry)  # not yet verified, so not cached
    dead = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    runtime.database.engine = dead
    runtime.database._sessions = sessionmaker(dead)
    response = admin.http.get("/v1/me", headers={"X-API-Key": fresh["key"]})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    listed = admin.get("/v1/api-keys")  # cached key, but listing needs the database
    assert listed.status_code == 503


def test_me_shows_when_a_rotated_key_stops_working(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    old = admin.create_key(secret_registry, expiresIn="30d")
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "1h"})
    secret_registry.add(rotated.json()["data"]["key"])
    me = admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).json()["data"]
    assert me["credential"]["expiresAt"] == "2026-01-15T13:00:00Z"


def test_every_key_object_names_its_organization(
    admin: Member, outsider: Member, secret_registry: SecretRegistry
) -> None:
    created = admin.create_key(secret_registry, name="ci")
    for data in (
        admin.get(f"/v1/api-keys/{created['id']}").json()["data"],
        *admin.get("/v1/api-keys").json()["data"],
        admin.patch(f"/v1/api-keys/{created['id']}", json={"name": "ci2"}).json()["data"],
    ):
        assert (data["orgId"], data["orgName"]) == (admin.org_id, "acme")
    theirs = outsider.get("/v1/api-keys").json()["data"]
    assert {(k["orgId"], k["orgName"]) for k in theirs} == {(outsider.org_id, "globex")}


def test_a_key_whose_owner_was_removed_says_so_and_is_refused(
    admin: Member, member: Member, runtime: Runtime
) -> None:
    from sqlalchemy import delete

    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.store.models import Membership

    assert member.get("/v1/me").status_code == 200
    with runtime.database.session() as session:
        session.execute(
            delete(Membership).where(
                Membership.user_id == member.user_id, Membership.org_id == member.org_id
            )
        )
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, member.org_id, user_id=member.user_id)
    )
    assert member.get("/v1/me").status_code == 401
    seen = admin.get(f"/v1/api-keys/{member.key_id}").json()["data"]
    assert seen["status"] == "owner_removed"
    listed = {k["id"]: k["status"] for k in admin.get("/v1/api-keys?all=true").json()["data"]}
    assert listed == {member.key_id: "owner_removed", admin.key_id: "active"}
    rotated = admin.post(f"/v1/api-keys/{member.key_id}/rotate", json={})
    assert rotated.status_code == 409


def test_revoke_shows_what_the_key_did_in_the_last_30_days(
    admin: Member,
    member: Member,
    outsider: Member,
    secret_registry: SecretRegistry,
    clock: FrozenClock,
) -> None:
    made = member.create_key(secret_registry, name="leaky", scopes=["*"])
    leaky = {"X-API-Key": made["key"]}
    # Something it did 31 days ago is outside the window.
    old = admin.http.post("/v1/api-keys", headers=leaky, json={"name": "old child"})
    assert old.status_code == 201
    secret_registry.add(old.json()["data"]["key"])
    clock.advance(timedelta(days=31))
    child = admin.http.post("/v1/api-keys", headers=leaky, json={"name": "child"})
    assert child.status_code == 201
    secret_registry.add(child.json()["data"]["key"])
    child_id = child.json()["data"]["id"]
    renamed = admin.http.patch(f"/v1/api-keys/{child_id}", headers=leaky, json={"name": "c2"})
    assert renamed.status_code == 200
    for _ in range(2):  # a member's key is refused the audit log: audited, the key as actor
        assert admin.http.get("/v1/audit-logs", headers=leaky).status_code == 403
    # Another organization's keys and another key of this one count for nothing here.
    outsider.create_key(secret_registry, name="theirs")
    admin.create_key(secret_registry, name="bystander")

    revoked = admin.delete(f"/v1/api-keys/{made['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["data"]["status"] == "revoked"
    radius = revoked.json()["meta"]["blastRadius"]
    assert radius["events"] == 4
    assert radius["refusals"] == 2
    assert radius["actions"] == [
        {"action": "authz.denied", "count": 2},
        {"action": "api_key.created", "count": 1},
        {"action": "api_key.updated", "count": 1},
    ]
    assert radius["targets"] == 1  # the child key (the refusals name no target)
    assert len(radius["addresses"]) == 1
    assert radius["since"] < radius["lastEventAt"]
    assert revoked.json()["meta"]["requestId"] == revoked.headers["X-Request-Id"]

    # A key that did nothing: an empty radius, not a missing one.
    quiet = admin.create_key(secret_registry, name="quiet")
    empty = admin.delete(f"/v1/api-keys/{quiet['id']}").json()["meta"]["blastRadius"]
    assert (empty["events"], empty["actions"], empty["addresses"]) == (0, [], [])
    assert empty["lastEventAt"] is None


def test_usage_counts_requests_and_refusals_by_day_without_a_write_per_request(
    admin: Member,
    outsider: Member,
    secret_registry: SecretRegistry,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    made = admin.create_key(secret_registry, name="counted", rateLimit=3)
    sent = {"X-API-Key": made["key"]}
    # The first verifies in full, the rest take the cached path: both are counted.
    assert [admin.http.get("/v1/me", headers=sent).status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    from_browser = {**sent, "Origin": "https://evil.example"}
    assert admin.http.get("/v1/me", headers=from_browser).status_code == 403
    stored = runtime.database.session
    with stored() as session:  # nothing written yet: the counts are in memory
        assert session.query(ApiKeyUsage).count() == 0
    runtime.usage.flush(today=clock.now().date())

    used = admin.get(f"/v1/api-keys/{made['id']}/usage", params={"days": 3})
    assert used.status_code == 200
    days = used.json()["data"]
    assert [d["day"] for d in days] == [
        (clock.now().date() - timedelta(days=n)).isoformat() for n in (2, 1, 0)
    ]
    assert days[-1] == {
        "day": clock.now().date().isoformat(),
        "requests": 4,  # the fourth authenticated, then met its limit
        "invalid": 1,
        "rateLimited": 1,
        "lastAddress": "testclient",  # the in-process client's address
    }
    assert days[0] == {
        "day": days[0]["day"],
        "requests": 0,
        "invalid": 0,
        "rateLimited": 0,
        "lastAddress": None,
    }

    # A second flush adds only what came since; a revoked key's uses count as invalid.
    assert admin.delete(f"/v1/api-keys/{made['id']}").status_code == 200
    assert admin.http.get("/v1/me", headers=sent).status_code == 401
    runtime.usage.flush(today=clock.now().date())
    today = admin.get(f"/v1/api-keys/{made['id']}/usage", params={"days": 1}).json()["data"]
    assert today == [{**days[-1], "invalid": 2}]

    # Another organization's key is not found; days are bounded.
    assert outsider.get(f"/v1/api-keys/{made['id']}/usage").status_code == 404
    too_far = admin.get(f"/v1/api-keys/{made['id']}/usage", params={"days": 91})
    assert too_far.status_code == 400
    assert too_far.json()["error"]["code"] in {"validation_error", "invalid_request"}
