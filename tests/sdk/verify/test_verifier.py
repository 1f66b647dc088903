"""``Verifier`` against a live hub: keys through the hub, cached; tokens offline."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtools.server import operator
from runtools.verify import CredentialRefused, HubUnavailable, Verifier
from support.live_server import free_port
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp

from .conftest import Ticking, new_key, sign_in

pytestmark = pytest.mark.anyio


async def test_a_key_is_checked_by_the_hub_once_then_from_the_cache(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry
) -> None:
    key = new_key(ada, secret_registry, scopes=["tool:*"])
    verifier = Verifier(auth_url=hub.url, service_key=service_key)
    first = await verifier.verify(key["key"], ["tool:*"])
    again = await verifier.verify(key["key"])
    assert first == again
    assert verifier.hub_calls == 1
    assert first.credential_type == "api_key"
    assert first.credential_id == key["id"]
    assert first.user_id == ada.user_id
    assert first.effective_scopes == ("tool:*",)
    with pytest.raises(CredentialRefused) as lacking:
        await verifier.verify(key["key"], ["sandbox:read"])
    assert lacking.value.status_code == 403
    assert lacking.value.message == "This call requires scope sandbox:read"
    await verifier.aclose()


async def test_a_revoked_key_stops_within_the_cache_ttl(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry, clock: Ticking
) -> None:
    key = new_key(ada, secret_registry)
    verifier = Verifier(
        auth_url=hub.url, service_key=service_key, cache_ttl_seconds=10, monotonic=clock
    )
    await verifier.verify(key["key"])
    assert ada.delete(f"/v1/api-keys/{key['id']}").status_code == 200
    clock.now += 9.9
    await verifier.verify(key["key"])  # within the documented bound
    clock.now += 0.2
    with pytest.raises(CredentialRefused) as refused:
        await verifier.verify(key["key"])
    assert refused.value.status_code == 401
    await verifier.aclose()


async def test_the_cache_is_bounded_in_size(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry
) -> None:
    keys = [new_key(ada, secret_registry)["key"] for _ in range(3)]
    verifier = Verifier(auth_url=hub.url, service_key=service_key, cache_size=2)
    for key in keys:
        await verifier.verify(key)
    await verifier.verify(keys[2])
    assert verifier.hub_calls == 3
    await verifier.verify(keys[0])  # evicted: asked again
    assert verifier.hub_calls == 4
    await verifier.aclose()


async def test_bad_credentials_are_one_401_and_refusals_are_cached_briefly(
    hub: ServedApp, service_key: str, ada: Caller
) -> None:
    verifier = Verifier(auth_url=hub.url, service_key=service_key)
    altered = ada.key[:-1] + ("y" if ada.key.endswith("x") else "x")  # a checksum that fails
    for credential in (None, "", "rt_live_" + "A" * 38, altered, "a.b.c", "x" * 5000):
        with pytest.raises(CredentialRefused) as refused:
            await verifier.verify(credential)
        assert refused.value.status_code == 401
        assert refused.value.message == "Invalid or missing authentication"
    calls = verifier.hub_calls
    with pytest.raises(CredentialRefused):
        await verifier.verify("rt_live_" + "A" * 38)
    assert verifier.hub_calls == calls
    await verifier.aclose()


async def test_a_session_token_is_verified_offline(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry
) -> None:
    token = sign_in(hub, secret_registry)
    verifier = Verifier(auth_url=hub.url, service_key=service_key)
    principal = await verifier.verify(token, ["tool:*", "org:members"])
    assert principal.offline
    assert principal.credential_type == "session"
    assert principal.user_id == ada.user_id
    assert principal.role == "admin"
    assert not principal.allows("auth:verify")
    assert verifier.hub_calls == 0
    assert verifier.keys.fetches == 1
    await verifier.verify(token)
    assert verifier.keys.fetches == 1
    await verifier.aclose()


async def test_a_members_session_carries_their_roles_ceiling(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry
) -> None:
    hub.caller("acme", "bob@example.com", "member")
    operator.set_first_password(hub.runtime, "bob@example.com", "another good passphrase")
    token = sign_in(hub, secret_registry, "bob@example.com", "another good passphrase")
    verifier = Verifier(auth_url=hub.url, service_key=service_key)
    principal = await verifier.verify(token, ["tool:*"])
    assert principal.role == "member"
    with pytest.raises(CredentialRefused) as refused:
        await verifier.verify(token, ["org:members"])
    assert refused.value.status_code == 403
    await verifier.aclose()


async def test_a_rotated_signing_key_is_fetched_and_made_up_kids_are_bounded(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry, clock: Ticking
) -> None:
    verifier = Verifier(
        auth_url=hub.url, service_key=service_key, jwks_refetch_seconds=30, monotonic=clock
    )
    await verifier.verify(sign_in(hub, secret_registry))
    hub.runtime.keyring.rotate()
    clock.now += 31
    rotated = sign_in(hub, secret_registry)
    assert (await verifier.verify(rotated)).credential_type == "session"
    assert verifier.keys.fetches == 2
    forger = Ed25519PrivateKey.generate()
    now = int(time.time())
    claims: dict[str, object] = {"iss": "runtools", "aud": "runtools-api", "org": "org_x"}
    claims["sub"] = ada.user_id
    claims |= {"sid": "ses_x", "exp": now + 300, "scope": "*"}
    clock.now += 31
    for i in range(5):
        forged = jwt.encode(claims, forger, algorithm="EdDSA", headers={"kid": f"sk_forged{i}"})
        with pytest.raises(CredentialRefused):
            await verifier.verify(forged)
    assert verifier.keys.fetches == 3  # one refetch for five unknown kids
    # A forged token under a real kid fails its signature.
    real_kid = jwt.get_unverified_header(rotated)["kid"]
    forged = jwt.encode(claims, forger, algorithm="EdDSA", headers={"kid": real_kid})
    with pytest.raises(CredentialRefused):
        await verifier.verify(forged)
    await verifier.aclose()


async def test_an_expired_token_is_refused(
    hub: ServedApp, service_key: str, ada: Caller, secret_registry: SecretRegistry
) -> None:
    token = sign_in(hub, secret_registry)
    later = Verifier(auth_url=hub.url, service_key=service_key, now=lambda: time.time() + 3600)
    with pytest.raises(CredentialRefused):
        await later.verify(token)
    await later.aclose()


async def test_no_hub_or_a_bad_service_key_fails_closed(
    hub: ServedApp, ada: Caller, secret_registry: SecretRegistry
) -> None:
    down = Verifier(auth_url=f"http://127.0.0.1:{free_port()}", service_key=ada.key)
    with pytest.raises(HubUnavailable):
        await down.verify(ada.key)
    with pytest.raises(HubUnavailable):
        await down.verify(sign_in(hub, secret_registry))  # no keys to check it with
    # A person's `*` key is no service key: the hub's 403 is about us, not the caller.
    wrong = Verifier(auth_url=hub.url, service_key=ada.key)
    with pytest.raises(HubUnavailable) as unavailable:
        await wrong.verify(ada.key)
    assert unavailable.value.status_code == 503
    await down.aclose()
    await wrong.aclose()
