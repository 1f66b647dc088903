"""The steady path vouches for cached, valid credentials only, and counts them.

``SteadyPath`` answers most requests without the full path. These tests pin
that it never accepts what ``authenticate`` would refuse, that a refusal
still reaches the full path (which audits it), and that it counts each
request it vouches for. A differential test sends random requests to it
and to the full path, across expiries, rotations, revocations and removed
owners, and fails if it ever admits what the full path refuses.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from runtools.server.authn.cache import Entry
from runtools.server.authn.steady import SteadyPath
from runtools.server.domain.clock import FrozenClock
from runtools.server.domain.errors import RateLimited
from runtools.server.domain.events import CredentialEvent, EventKind
from runtools.server.domain.keys import sha256_hex
from runtools.server.domain.principal import Principal
from runtools.server.ratelimit.meters import Meter, Meters
from runtools.server.runtime import Runtime
from runtools.server.store.models import ApiKey, AuditEvent, Membership
from support.principals import principal
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants, tampered

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def steady(runtime: Runtime) -> SteadyPath:
    """The steady path serving the app."""
    return runtime.steady_path


# Rate-limit windows are epoch minutes of the runtime's clock, frozen here: a test's
# counts stay in one window without waiting for one to open.


def _warm(member: Member, key: str) -> None:
    assert member.http.get("/v1/me", headers={"X-API-Key": key}).status_code == 200


def _vouch(steady: SteadyPath, headers: list[tuple[bytes, bytes]]) -> Principal | None:
    state: dict[str, Any] = {}
    found: Principal | None = steady(headers, state)
    if found is None:
        assert state == {}  # nothing is counted or left behind for a request not vouched for
    else:
        assert state["principal"] is found
    return found


def test_a_cached_key_is_vouched_for_in_its_usual_forms(admin: Member, steady: SteadyPath) -> None:
    _warm(admin, admin.key)
    key = admin.key.encode()
    for headers in (
        [(b"host", b"x"), (b"x-api-key", key)],
        [(b"authorization", b"Bearer " + key)],
        [(b"x-api-key", key), (b"user-agent", b"probe")],
        [(b"x-api-key", key), (b"accept", b"text/plain"), (b"accept", b"*/*")],
    ):
        principal = _vouch(steady, headers)
        assert principal is not None
        assert principal.credential_id == admin.key_id


def test_a_cached_session_token_is_vouched_for_as_a_bearer_only(
    tenants: Tenants, steady: SteadyPath, secret_registry: SecretRegistry
) -> None:
    ada = tenants.member(password=PASSWORD)
    signed_in = ada.http.post("/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    token = signed_in.json()["data"]["accessToken"]
    secret_registry.add(token)
    secret_registry.add(signed_in.json()["data"]["refreshToken"])
    assert ada.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).is_success
    found = _vouch(steady, [(b"authorization", b"Bearer " + token.encode())])
    assert found is not None
    assert found.credential_type == "session"
    assert _vouch(steady, [(b"x-api-key", token.encode())]) is None  # the full path refuses it


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"x-api-key", b" KEY")],  # not the exact bytes that were verified
        [(b"x-api-key", b"Bearer KEY")],
        [(b"authorization", b"bearer KEY")],  # the full path parses other spellings
        [(b"authorization", b"Basic Zm9vOmJhcg==")],
        [(b"authorization", b"Bearer")],
        [(b"x-api-key", b"KEY"), (b"x-api-key", b"KEY")],
        [(b"authorization", b"Bearer KEY"), (b"authorization", b"Bearer KEY")],
        [(b"x-api-key", b"KEY"), (b"authorization", b"Bearer KEY")],
        [(b"X-API-Key", b"KEY")],  # ASGI names are lower case; anything else is not ours
    ],
)
def test_anything_unusual_is_left_to_the_full_path(
    admin: Member, steady: SteadyPath, headers: list[tuple[bytes, bytes]]
) -> None:
    _warm(admin, admin.key)
    key = admin.key.encode()
    presented = [(name, value.replace(b"KEY", key)) for name, value in headers]
    assert _vouch(steady, presented) is None


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", "KEY"), ("X-API-Key", "KEY")],
        [("X-API-Key", "KEY"), ("X-API-Key", "rt_live_other")],
        [("Authorization", "Bearer KEY"), ("Authorization", "Bearer KEY")],
    ],
)
def test_a_repeated_credential_header_is_a_400_not_a_pick(
    admin: Member, steady: SteadyPath, headers: list[tuple[str, str]]
) -> None:
    _warm(admin, admin.key)
    sent = [(name, value.replace("KEY", admin.key)) for name, value in headers]
    response = admin.http.get("/v1/me", headers=sent)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "one credential" in error["message"]
    assert admin.key not in response.text


def test_a_revoked_key_is_refused_at_once_though_it_was_cached(
    admin: Member, steady: SteadyPath, secret_registry: SecretRegistry
) -> None:
    doomed = admin.create_key(secret_registry, name="doomed")
    _warm(admin, doomed["key"])
    assert _vouch(steady, [(b"x-api-key", doomed["key"].encode())]) is not None
    assert admin.delete(f"/v1/api-keys/{doomed['id']}").status_code == 200
    assert _vouch(steady, [(b"x-api-key", doomed["key"].encode())]) is None
    assert admin.http.get("/v1/me", headers={"X-API-Key": doomed["key"]}).status_code == 401


def test_a_cached_key_stops_at_its_expiry_and_the_refusal_is_audited(
    admin: Member,
    runtime: Runtime,
    steady: SteadyPath,
    secret_registry: SecretRegistry,
    clock: FrozenClock,
) -> None:
    expiring = admin.create_key(secret_registry, name="expiring", expiresIn="1h")
    _warm(admin, expiring["key"])
    clock.advance(timedelta(minutes=61))
    assert _vouch(steady, [(b"x-api-key", expiring["key"].encode())]) is None
    assert admin.http.get("/v1/me", headers={"X-API-Key": expiring["key"]}).status_code == 401
    runtime.flush()
    with runtime.database.session() as session:
        reasons = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.target_id == expiring["id"])
        ).all()
    assert "expired" in reasons


def test_a_rotated_key_stops_at_the_end_of_its_grace_though_it_was_cached(
    admin: Member, steady: SteadyPath, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    old = admin.create_key(secret_registry, name="old")
    _warm(admin, old["key"])
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "1h"})
    secret_registry.add(rotated.json()["data"]["key"])
    clock.advance(timedelta(minutes=59))
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 200
    clock.advance(timedelta(minutes=2))
    assert _vouch(steady, [(b"x-api-key", old["key"].encode())]) is None
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401


def test_a_key_whose_owner_left_is_refused_from_its_cache_entry_without_noting_a_use(
    member: Member, runtime: Runtime, steady: SteadyPath, clock: FrozenClock
) -> None:
    _warm(member, member.key)
    runtime.flush()
    with runtime.database.session() as session:
        session.execute(delete(Membership).where(Membership.user_id == member.user_id))
        session.execute(update(ApiKey).where(ApiKey.id == member.key_id).values(last_used_at=None))
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, member.org_id, user_id=member.user_id)
    )
    clock.advance(timedelta(minutes=2))  # a use now would be a new lastUsedAt
    # The first refusal caches what the store said; the second is answered from that entry.
    for _ in range(2):
        assert member.http.get("/v1/me", headers={"X-API-Key": member.key}).status_code == 401
        assert _vouch(steady, [(b"x-api-key", member.key.encode())]) is None
    runtime.flush()
    with runtime.database.session() as session:
        used = session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == member.key_id))
        reasons = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.target_id == member.key_id)
        ).all()
    assert used is None
    assert reasons.count("owner_removed") == 2


def test_a_use_is_noted_once_a_minute(
    admin: Member, runtime: Runtime, steady: SteadyPath, clock: FrozenClock
) -> None:
    def last_used() -> datetime | None:
        runtime.flush()
        with runtime.database.session() as session:
            return session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == admin.key_id))

    _warm(admin, admin.key)
    first = last_used()
    assert first is not None
    clock.advance(timedelta(minutes=3))
    for _ in range(3):
        assert _vouch(steady, [(b"x-api-key", admin.key.encode())]) is not None
    noted = last_used()
    assert noted is not None
    assert noted.replace(tzinfo=None) - first.replace(tzinfo=None) == timedelta(minutes=3)


def test_each_request_vouched_for_is_counted_then_refused_past_the_limit(
    admin: Member, steady: SteadyPath, secret_registry: SecretRegistry
) -> None:
    slow = admin.create_key(secret_registry, rateLimit=3)
    headers = [(b"x-api-key", slow["key"].encode())]
    _warm(admin, slow["key"])  # the full path counted this one
    state: dict[str, Any] = {}
    assert steady(headers, state) is not None
    assert dict(state["rate_limit_headers"])[b"x-ratelimit-remaining"] == b"1"
    assert dict(state["rate_limit_headers"])[b"x-ratelimit-limit"] == b"3"
    assert steady.hits >= 1
    refused = admin.http.get("/v1/me", headers={"X-API-Key": slow["key"]})
    assert refused.status_code == 200
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    refused = admin.http.get("/v1/me", headers={"X-API-Key": slow["key"]})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_a_changed_limit_applies_at_once_and_keeps_the_windows_count(
    admin: Member, steady: SteadyPath, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, rateLimit=5)
    _warm(admin, key["key"])
    assert admin.patch(f"/v1/api-keys/{key['id']}", json={"rateLimit": 10}).status_code == 200
    answer = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]})
    assert answer.headers["X-RateLimit-Limit"] == "10"
    assert answer.headers["X-RateLimit-Remaining"] == "8"
    answer = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]})
    assert answer.headers["X-RateLimit-Remaining"] == "7"


# -- the two implementations, compared ---------------------------------------------


@dataclass(slots=True)
class FakeVerified:
    """What the steady path reads of a verified key (``key_id``) or token (None)."""

    principal: Principal
    ends: float
    key_id: str | None
    next_note: list[float] = field(default_factory=lambda: [float("-inf")])
    browser_allowed: bool = True
    networks: tuple[Any, ...] = ()


@dataclass
class World:
    """A cache, meters and clock of the steady path's own, and what it did to them."""

    entries: dict[str, Entry[Any]]
    meters: Meters
    now: list[float]
    touches: list[tuple[str, float]] = field(default_factory=list)

    def build(self) -> SteadyPath:
        def touch(key_id: str, now: float) -> float:
            self.touches.append((key_id, now))
            return (now // 60 + 1) * 60

        def over_limit(meter: Meter, state: MutableMapping[str, Any]) -> None:
            state["rate_limit_headers"] = meter.headers(0)
            raise RateLimited("over", retry_after=1)

        return SteadyPath(
            entries=self.entries,
            monotonic=lambda: 100.0,
            timestamp=lambda: self.now[0],
            touch=touch,
            meters=self.meters,
            wall_clock=lambda: self.now[0],
            open_meter=self.meters.open,
            over_limit=over_limit,
        )


def _random_headers(rng: random.Random, tokens: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Zero to two credential headers, in usual and unusual forms, among other headers."""
    token = rng.choice(tokens)
    credentials = [
        (b"x-api-key", token),
        (b"x-api-key", token),
        (b"authorization", b"Bearer " + token),
        (b"authorization", b"Bearer " + token),
        (b"authorization", b"bearer " + token),
        (b"authorization", b"Bearer  " + token),
        (b"x-api-key", b" " + token),
        (b"authorization", b"Bearer"),
        (b"authorization", b""),
    ]
    others = [
        (b"host", b"x"),
        (b"accept", b"*/*"),
        (b"accept", b"text/plain"),
        (b"origin", b"https://app.example.com"),  # a browser's: refused unless allowBrowser
        (b"sec-fetch-site", b"same-origin"),
    ]
    chosen = rng.choices(credentials, k=rng.choice([0, 1, 1, 1, 1, 2])) + rng.sample(
        others, k=rng.randint(0, 3)
    )
    rng.shuffle(chosen)
    return chosen


def test_the_steady_path_never_admits_what_the_full_path_refuses(
    tenants: Tenants,
    runtime: Runtime,
    steady: SteadyPath,
    clock: FrozenClock,
    secret_registry: SecretRegistry,
) -> None:
    """Random requests to both paths, while credentials expire (one within its rotation's
    grace), rotate, are revoked and their owners leave, some sent as a browser sends them,
    to keys that allow browsers or not, with address allowlists the caller is in or out of,
    and to a honeytoken: whatever the steady path vouches for, the full path admits, as the
    same credential; and the steady path does answer most requests for live ones."""
    import anyio
    from starlette.datastructures import Headers

    from runtools.server.domain.audit import RequestContext
    from runtools.server.domain.errors import ServiceError

    ada = tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)
    bob = tenants.member("acme", "bob@example.com", "member")
    keys = [ada.key, bob.key]
    key_ids = [ada.key_id, bob.key_id]
    for i, expiry in enumerate(["1h", "2h", None, None]):
        body = {"name": f"k{i}", **({"expiresIn": expiry} if expiry else {})}
        made = (ada if i % 2 == 0 else bob).create_key(secret_registry, **body)
        keys.append(made["key"])
        key_ids.append(made["id"])
    rotated = ada.post(f"/v1/api-keys/{key_ids[4]}/rotate", json={"gracePeriod": "1h"})
    keys.append(secret_registry.add(rotated.json()["data"]["key"]))
    key_ids.append(rotated.json()["data"]["id"])
    # A grace longer than the key's life: it expires (after an hour) while still in grace.
    rotated = ada.post(f"/v1/api-keys/{key_ids[2]}/rotate", json={"gracePeriod": "24h"})
    keys.append(secret_registry.add(rotated.json()["data"]["key"]))
    key_ids.append(rotated.json()["data"]["id"])

    # Where a key may be used from; the caller below is at 198.51.100.1.
    uses: list[dict[str, Any]] = [
        {"allowBrowser": True},
        {"allowedCidrs": ["198.51.100.0/24"]},
        {"allowedCidrs": ["10.0.0.0/8"], "allowBrowser": True},
        {"isCanary": True},
    ]
    for use in uses:
        made = ada.create_key(secret_registry, name="use", **use)
        keys.append(made["key"])
        key_ids.append(made["id"])

    def sign_in() -> bytes:
        signed_in = ada.http.post("/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
        secret_registry.add(signed_in.json()["data"]["refreshToken"])
        return secret_registry.add(signed_in.json()["data"]["accessToken"]).encode()

    tokens = [k.encode() for k in keys] + [
        sign_in(),
        tampered(ada.key).encode(),
        b"rt_live_" + b"0" * 38,
    ]

    def context() -> RequestContext:
        return RequestContext(request_id="req_differential", ip="198.51.100.1")

    async def full(headers: list[tuple[bytes, bytes]]) -> str | None:
        try:
            found = await runtime.authenticator.authenticate(Headers(raw=headers), context)
        except ServiceError:
            return None
        return found.credential_id

    def vouched(headers: list[tuple[bytes, bytes]]) -> str | None:
        state: dict[str, Any] = {}
        try:
            found = steady(headers, state)
        except RateLimited:  # vouched for, then counted past the limit
            found = state["principal"]
        return found.credential_id if found is not None else None

    rng = random.Random(20261202)
    answered = agreed = 0
    for step in range(1500):
        roll = rng.random()
        if roll < 0.01:  # past the session token's end, then the keys' ends and graces
            clock.advance(timedelta(minutes=rng.randint(1, 10)))
            tokens.append(sign_in())  # a live session token beside those that ended
        elif roll < 0.012:
            doomed = rng.choice(key_ids[2:])
            ada.delete(f"/v1/api-keys/{doomed}")
        elif step == 900:  # bob leaves the organization: his keys end at once
            with runtime.database.session() as session:
                session.execute(delete(Membership).where(Membership.user_id == bob.user_id))
                session.commit()
            runtime.bus.publish(
                CredentialEvent(EventKind.MEMBER_CHANGED, bob.org_id, user_id=bob.user_id)
            )
        headers = _random_headers(rng, tokens)
        admitted = anyio.run(full, headers)  # also fills the cache, as a request would
        steady_answer = vouched(headers)
        if steady_answer is not None:
            answered += 1
            assert admitted == steady_answer, (step, headers)
        elif admitted is not None:
            agreed += 1
    assert answered > 60  # the steady path does its job for live credentials...
    assert agreed > 0  # ...and leaves the unusual forms to the full path


BEARER = [(b"authorization", b"Bearer t")]


def _shared_node(prefix: str, now: list[float], owner: Principal) -> tuple[Any, Any]:
    """One node counting in Redis: its limiter and its steady path."""
    from runtools.server.ratelimit.counters import (
        BlockCounter,
        FailoverCounter,
        LocalCounter,
        RedisCounter,
    )
    from runtools.server.ratelimit.limiter import RateLimiter

    counter = FailoverCounter(
        BlockCounter(RedisCounter(LOCAL_REDIS, prefix, timeout=5)), LocalCounter()
    )
    limiter = RateLimiter(counter, address_limit=10, wall_clock=lambda: now[0])
    meters = limiter.meters
    assert meters is not None
    path = SteadyPath(
        entries={sha256_hex(b"t"): Entry(FakeVerified(owner, 1e300, None), 200.0)},
        monotonic=lambda: 100.0,
        timestamp=lambda: now[0],
        touch=lambda key_id, at: at,
        meters=meters,
        wall_clock=lambda: now[0],
        open_meter=meters.open,
        over_limit=limiter.over_limit,
    )

    async def request() -> tuple[bytes, bool]:
        """As the guard does it: the steady path, then the limiter if it did not count."""
        state: dict[str, Any] = {}
        assert path(BEARER, state) is owner
        in_steady_path = "rate_limit_headers" in state
        if not in_steady_path:
            await limiter.admit_principal(owner, state)
        return dict(state["rate_limit_headers"])[b"x-ratelimit-remaining"], in_steady_path

    return limiter, request


def test_shared_counts_are_taken_from_the_reserved_block_without_redis() -> None:
    """With counts in Redis, one request in a block goes to Redis; the rest stay here."""
    import asyncio
    import secrets

    import redis

    prefix = f"t_{secrets.token_hex(6)}"
    owner = principal(plan="enterprise")  # 1,000 a minute: blocks of 20
    _, request = _shared_node(prefix, [1_000_000.0], owner)
    stored = redis.Redis.from_url(LOCAL_REDIS)
    redis_key = f"{prefix}:rl:api_key:key_1:999960"

    async def run() -> list[tuple[bytes, bool]]:
        answers = [await request() for _ in range(20)]
        assert stored.get(redis_key) == b"20"  # one block reserved for twenty requests
        answers.append(await request())
        assert stored.get(redis_key) == b"40"
        return answers

    try:
        answers = asyncio.run(run())
    finally:
        stored.delete(redis_key)
    assert [remaining for remaining, _ in answers] == [b"%d" % (999 - i) for i in range(21)]
    assert [steady for _, steady in answers] == [False] + [True] * 19 + [False]


def test_two_nodes_never_hand_out_one_position_twice() -> None:
    """Concurrent requests on two nodes, blocks moving to meters: every position once."""
    import asyncio
    import secrets

    import redis

    prefix = f"t_{secrets.token_hex(6)}"
    owner = principal(plan="enterprise")
    now = [1_000_000.0]
    nodes = [_shared_node(prefix, now, owner)[1] for _ in range(2)]

    async def run() -> list[tuple[bytes, bool]]:
        answers: list[tuple[bytes, bool]] = []
        for _ in range(30):  # waves of twenty concurrent requests, ten on each node
            answers += await asyncio.gather(*(nodes[i % 2]() for i in range(20)))
        return answers

    try:
        answers = asyncio.run(run())
    finally:
        redis.Redis.from_url(LOCAL_REDIS).delete(f"{prefix}:rl:api_key:key_1:999960")
    remaining = [int(value) for value, _ in answers]
    assert len(set(remaining)) == 600  # no position given twice
    assert min(remaining) >= 1000 - 600 - 2 * 20  # at most a block per node stranded
    assert any(steady for _, steady in answers)


def test_the_count_is_exact_under_threads() -> None:
    """Counting is ``next()`` on the meter's counter: no request is lost or counted twice."""
    from concurrent.futures import ThreadPoolExecutor

    world = World({}, Meters(), [1_000_000.0])
    owner = principal(credential_id="busy", plan="enterprise")  # 1,000 a minute
    world.entries[sha256_hex(b"busy")] = Entry(FakeVerified(owner, float("inf"), None), 200.0)
    path = world.build()
    seen: list[bytes] = []

    def hammer(_: int) -> None:
        for _ in range(250):
            state: dict[str, Any] = {}
            path([(b"authorization", b"Bearer busy")], state)
            seen.append(dict(state["rate_limit_headers"])[b"x-ratelimit-remaining"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(hammer, range(4)))
    assert sorted(int(v) for v in seen) == list(range(1000))  # each count exactly once
    assert list(itertools.islice(world.meters[("api_key", "busy")].counts, 1)) == [1001]
