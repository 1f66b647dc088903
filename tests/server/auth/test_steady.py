"""The steady path vouches for cached, valid credentials only, and counts them.

``SteadyPath`` answers most requests without the full path. These tests pin
that it never accepts what ``authenticate`` would refuse, that a refusal
still reaches the full path (which audits it), and that it counts each
request it vouches for. Every case runs against both implementations: the
compiled one the service uses and the Python reference it falls back to;
the last tests compare the two on random inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from runtools.server.auth.cache import Entry
from runtools.server.auth.keys import sha256_hex
from runtools.server.auth.principal import Principal
from runtools.server.auth.steady import SteadyPath, SteadyPathLike, build_steady_path, native
from runtools.server.clock import FrozenClock
from runtools.server.errors import RateLimited
from runtools.server.events import CredentialEvent, EventKind
from runtools.server.ratelimit.meters import Meter, Meters
from runtools.server.runtime import Runtime
from runtools.server.store.models import ApiKey, AuditEvent, Membership
from support.principals import principal
from support.tenants import Member, Tenants

IMPLEMENTATIONS = ["compiled", "python"]
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery staple"


def test_the_compiled_path_is_built() -> None:
    """The service runs on it; without it (no C compiler) it falls back to Python."""
    assert native() is not None, "runtools.server.auth._steady was not built: run scripts/setup"


def test_an_install_without_the_compiled_path_says_so_and_runs_in_python(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from runtools.server.auth import steady

    monkeypatch.setattr(steady, "native", lambda: None)
    with caplog.at_level("WARNING", logger="runtools.auth"):
        path = build_steady_path(runtime.authenticator, runtime.rate_limiter)
    assert isinstance(path, SteadyPath)
    assert "compiled authentication path is not built" in caplog.text


@pytest.fixture(params=IMPLEMENTATIONS)
def steady(request: pytest.FixtureRequest, runtime: Runtime) -> SteadyPathLike:
    """The runtime's steady path, in one implementation or the other, serving the app too."""
    compiled = request.param == "compiled"
    assert native() is not None or not compiled, "the compiled steady path was not built"
    path = build_steady_path(runtime.authenticator, runtime.rate_limiter, compiled=compiled)
    assert isinstance(path, SteadyPath) is not compiled
    runtime.steady_path = path
    return path


@pytest.fixture(autouse=True)
def one_window() -> Iterator[None]:
    """Rate-limit windows are epoch minutes: start well inside one."""
    into_minute = time.time() % 60
    if into_minute > 50:
        time.sleep(60 - into_minute + 0.1)
    yield


def _warm(member: Member, key: str) -> None:
    assert member.http.get("/v1/me", headers={"X-API-Key": key}).status_code == 200


def _vouch(steady: SteadyPathLike, headers: list[tuple[bytes, bytes]]) -> Principal | None:
    state: dict[str, Any] = {}
    found: Principal | None = steady(headers, state)
    if found is None:
        assert state == {}  # nothing is counted or left behind for a request not vouched for
    else:
        assert state["principal"] is found
    return found


def test_a_cached_key_is_vouched_for_in_its_usual_forms(
    admin: Member, steady: SteadyPathLike
) -> None:
    _warm(admin, admin.key)
    key = admin.key.encode()
    for headers in (
        [(b"host", b"x"), (b"x-api-key", key)],
        [(b"authorization", b"Bearer " + key)],
        [(b"x-api-key", key), (b"user-agent", b"probe")],
        [(b"x-api-key", key), (b"accept", b"text/plain"), (b"accept", b"*/*")],
    ):
        principal = _vouch(steady, headers)
        assert principal is not None and principal.credential_id == admin.key_id


def test_a_cached_session_token_is_vouched_for_as_a_bearer_only(
    tenants: Tenants, steady: SteadyPathLike, secret_registry: Any
) -> None:
    ada = tenants.member(password=PASSWORD)
    signed_in = ada.http.post("/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    token = signed_in.json()["data"]["accessToken"]
    secret_registry.add(token)
    secret_registry.add(signed_in.json()["data"]["refreshToken"])
    assert ada.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).is_success
    found = _vouch(steady, [(b"authorization", b"Bearer " + token.encode())])
    assert found is not None and found.credential_type == "session"
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
    admin: Member, steady: SteadyPathLike, headers: list[tuple[bytes, bytes]]
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
    admin: Member, steady: SteadyPathLike, headers: list[tuple[str, str]]
) -> None:
    _warm(admin, admin.key)
    sent = [(name, value.replace("KEY", admin.key)) for name, value in headers]
    response = admin.http.get("/v1/me", headers=sent)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "one credential" in error["message"]
    assert admin.key not in response.text


def test_a_revoked_key_is_refused_at_once_though_it_was_cached(
    admin: Member, steady: SteadyPathLike, secret_registry: Any
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
    steady: SteadyPathLike,
    secret_registry: Any,
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
    admin: Member, steady: SteadyPathLike, secret_registry: Any, clock: FrozenClock
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
    member: Member, runtime: Runtime, steady: SteadyPathLike, clock: FrozenClock
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
    admin: Member, runtime: Runtime, steady: SteadyPathLike, clock: FrozenClock
) -> None:
    def last_used() -> Any:
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
    assert noted.replace(tzinfo=None) - first.replace(tzinfo=None) == timedelta(minutes=3)


def test_each_request_vouched_for_is_counted_then_refused_past_the_limit(
    admin: Member, steady: SteadyPathLike, secret_registry: Any
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
    assert refused.status_code == 200 and refused.headers["X-RateLimit-Remaining"] == "0"
    refused = admin.http.get("/v1/me", headers={"X-API-Key": slow["key"]})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_a_changed_limit_applies_at_once_and_keeps_the_windows_count(
    admin: Member, steady: SteadyPathLike, secret_registry: Any
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


def test_the_compiled_sha256_is_sha256_with_or_without_the_cpus_sha_extensions() -> None:
    from runtools.server.auth import _steady

    for size in [*range(200), 1000, 4096, 65_536]:  # every tail length, one and two blocks
        data = os.urandom(size)
        expected = hashlib.sha256(data).hexdigest()
        assert _steady.sha256_hex(data) == expected == sha256_hex(data)
        assert _steady.portable_sha256_hex(data) == expected


@dataclass
class FakeVerified:
    """What the steady path reads of a verified key (``key_id``) or token (None)."""

    principal: Principal
    ends: float
    key_id: str | None
    next_note: list[float] = field(default_factory=lambda: [float("-inf")])


@dataclass(slots=True)
class SlottedVerified(FakeVerified):
    """The same in slots, as the real ones are: the compiled path reads those in place."""


@dataclass
class World:
    """One implementation's cache, meters, clocks and what it did to them."""

    entries: dict[str, Entry[Any]]
    meters: Meters
    now: list[float]
    touches: list[tuple[str, float]] = field(default_factory=list)

    def build(self, implementation: type[Any]) -> SteadyPathLike:
        def touch(key_id: str, now: float) -> float:
            self.touches.append((key_id, now))
            return (now // 60 + 1) * 60

        def over_limit(meter: Meter, state: MutableMapping[str, Any]) -> None:
            state["rate_limit_headers"] = meter.headers(0)
            raise RateLimited("over", retry_after=1)

        path: SteadyPathLike = implementation(
            entries=self.entries,
            monotonic=lambda: 100.0,
            timestamp=lambda: self.now[0],
            touch=touch,
            meters=self.meters,
            wall_clock=lambda: self.now[0],
            open_meter=self.meters.open,
            over_limit=over_limit,
        )
        return path


TOKENS = [f"rt_live_{i:038d}".encode() for i in range(8)]


def _world(seed: int) -> World:
    """Eight credentials in every state the steady path tells apart."""
    rng = random.Random(seed)
    entries: dict[str, Entry[Any]] = {}
    for i, token in enumerate(TOKENS[:7]):  # the last is unknown
        owner = principal(credential_id=f"key_{i}", rate_limit=rng.choice([1, 2, 3, None]))
        verified = rng.choice([FakeVerified, SlottedVerified])(
            owner,
            ends=rng.choice([float("inf"), float("-inf"), 1_000_030.0]),
            key_id=rng.choice([f"key_{i}", None]),
        )
        entries[sha256_hex(token)] = Entry(
            rng.choice([verified, verified, None]), rng.choice([200.0, 200.0, 50.0])
        )
    shared = rng.random() < 0.5
    meters = Meters(shared=shared)  # shared: only the reserved blocks count
    if shared:
        for i in range(7):
            if rng.random() < 0.5:
                owner = entries[sha256_hex(TOKENS[i])].value
                if owner is not None:
                    block = range(rng.randint(1, 3), rng.randint(1, 5))
                    meters.refill(owner.principal, 1_000_020, iter(block))
    return World(entries, meters, [1_000_000.0])


def _headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    token = rng.choice(TOKENS)
    credentials = [
        (b"x-api-key", token),
        (b"authorization", b"Bearer " + token),
        (b"authorization", b"bearer " + token),
        (b"authorization", b"Bearer  " + token),
        (b"x-api-key", b" " + token),
        (b"X-API-Key", token),
        (b"authorization", b"Bearer"),
        (b"authorization", b""),
    ]
    others = [(b"host", b"x"), (b"accept", b"*/*"), (b"accept", b"text/plain")]
    chosen = rng.choices(credentials, k=rng.choice([0, 1, 1, 1, 2])) + rng.sample(
        others, k=rng.randint(0, 3)
    )
    rng.shuffle(chosen)
    return chosen


def _outcome(path: SteadyPathLike, headers: list[tuple[bytes, bytes]]) -> tuple[Any, ...]:
    state: dict[str, Any] = {}
    try:
        found = path(headers, state)
    except RateLimited:
        found = "429"
    answer = found.credential_id if isinstance(found, Principal) else found
    shown = {k: (v.credential_id if isinstance(v, Principal) else v) for k, v in state.items()}
    return answer, shown


def test_both_implementations_answer_alike_on_random_requests() -> None:
    compiled = native()
    assert compiled is not None
    for seed in range(40):
        worlds = _world(seed), _world(seed)
        paths = worlds[0].build(compiled), worlds[1].build(SteadyPath)
        rng = random.Random(seed)
        for _ in range(60):
            if rng.random() < 0.1:  # across note minutes, window ends and credentials' ends
                for world in worlds:
                    world.now[0] += 25
            headers = _headers(rng)
            assert _outcome(paths[0], headers) == _outcome(paths[1], headers), headers
        assert worlds[0].touches == worlds[1].touches
        assert paths[0].hits == paths[1].hits
        assert {k: m.limit for k, m in worlds[0].meters.items()} == {
            k: m.limit for k, m in worlds[1].meters.items()
        }


def test_the_compiled_path_refuses_malformed_headers_without_harm() -> None:
    compiled = native()
    assert compiled is not None
    world = _world(1)
    path = world.build(compiled)
    for headers in (
        [(b"x-api-key",)],
        [(b"x-api-key", TOKENS[0], b"extra")],
        [("x-api-key", TOKENS[0].decode())],
        [(b"x-api-key", TOKENS[0].decode())],
        [[b"x-api-key", TOKENS[0]]],
        [None],
    ):
        assert path(headers, {}) is None
    with pytest.raises(TypeError):
        path(42, {})  # type: ignore[arg-type]


def test_the_compiled_path_reads_attributes_of_any_shape_alike() -> None:
    """Slots read in place, a property or a missing attribute through Python, never a crash."""
    compiled = native()
    assert compiled is not None

    class Computed:
        def __init__(self, owner: Principal) -> None:
            self.principal, self.key_id = owner, None

        @property
        def ends(self) -> float:
            return float("inf")

    @dataclass(slots=True)
    class Unset:
        principal: Principal
        ends: float
        key_id: str | None

    owner = principal()
    for verified, vouched in (
        (SlottedVerified(owner, float("inf"), None), True),
        (Computed(owner), True),
        (SlottedVerified(owner, float("-inf"), None), False),
    ):
        for _ in range(3):  # first through Python, then from what was learnt
            world = _world(0)
            world.entries[sha256_hex(b"t")] = Entry(verified, 200.0)
            found = world.build(compiled)([(b"authorization", b"Bearer t")], {})
            assert (found is owner) is vouched
    broken = Unset(owner, float("inf"), "key_1")
    del broken.key_id
    world = _world(0)
    world.entries[sha256_hex(b"t")] = Entry(broken, 200.0)
    for _ in range(2):
        with pytest.raises(AttributeError):
            world.build(compiled)([(b"authorization", b"Bearer t")], {})


def _hostile_world(verified: Any, **parts: Any) -> SteadyPathLike:
    compiled = native()
    assert compiled is not None
    meters = parts.pop("meters", None)
    return compiled(  # type: ignore[no-any-return]
        entries={sha256_hex(b"t"): Entry(verified, 200.0)},
        monotonic=lambda: 100.0,
        timestamp=lambda: 1_000_000.0,
        touch=parts.pop("touch", lambda key_id, now: now + 60),
        meters=meters,
        wall_clock=lambda: 1_000_000.0,
        open_meter=(meters or Meters()).open,
        over_limit=lambda meter, state: (_ for _ in ()).throw(RateLimited("over", retry_after=1)),
    )


BEARER = [(b"authorization", b"Bearer t")]


def test_the_compiled_path_fails_safely_on_hostile_objects() -> None:
    """Objects the service never makes: an error or a refusal each, never a crash or a pass."""
    compiled = native()
    assert compiled is not None
    owner = principal()
    with pytest.raises(TypeError):  # made without __init__
        compiled.__new__(compiled)(BEARER, {})

    def meter(limit: int, counts: Any) -> Meters:
        meters = Meters()
        meters[("api_key", "key_1")] = Meter(
            owner, limit, 1_000_020, counts, (b"x-ratelimit-limit", b"1"), (b"x", b"1")
        )
        return meters

    with pytest.raises(TypeError):  # counts that are not an iterator
        _hostile_world(SlottedVerified(owner, 1e300, None), meters=meter(10, [1]))(BEARER, {})
    with pytest.raises((OverflowError, RateLimited)):  # a remaining count past 64 bits
        _hostile_world(
            SlottedVerified(owner, 1e300, None), meters=meter(-(2**63), itertools.count(1))
        )(BEARER, {})

    note: list[float] = [float("-inf")]
    with pytest.raises(IndexError):  # the note emptied while it was being written
        _hostile_world(
            SlottedVerified(owner, 1e300, "key_1", note), touch=lambda *_: note.clear() or 0.0
        )([(b"x-api-key", b"t")], {})

    class Pair(tuple):  # type: ignore[type-arg]
        def __iter__(self) -> Iterator[bytes]:
            return iter((b"x-other", self[1]))

    class Name(bytes):
        def __eq__(self, other: object) -> bool:
            return False

        __hash__ = bytes.__hash__

    path = _hostile_world(SlottedVerified(owner, 1e300, None))
    assert path([Pair((b"authorization", b"Bearer t"))], {}) is None
    assert path([(Name(b"authorization"), b"Bearer t")], {}) is None


def test_the_compiled_path_follows_a_class_that_changes() -> None:
    """Slots read in place only while the class is as learnt, and only the class's own."""
    owner = principal()

    @dataclass(slots=True)
    class Patched:
        principal: Principal
        ends: float
        key_id: str | None

    path = _hostile_world(Patched(owner, 1e300, None))
    assert path(BEARER, {}) is owner and path(BEARER, {}) is owner  # learnt, then read
    Patched.ends = property(lambda self: float("-inf"))  # type: ignore[assignment,method-assign]
    assert path(BEARER, {}) is None

    class Big:
        __slots__ = (*"abcdefghijklmnopqrstuvwxyz", "ends")

    class Small:
        __slots__ = ("key_id", "principal")

    Small.ends = Big.__dict__["ends"]  # type: ignore[attr-defined]
    small = Small()
    small.principal, small.key_id = owner, None
    path = _hostile_world(small)
    for _ in range(2):
        with pytest.raises(TypeError):  # as Python says: the descriptor does not apply
            path(BEARER, {})


def test_the_service_clocks_are_read_as_python_reads_them() -> None:
    """time.time and time.monotonic are read without a call: they must agree with Python's."""
    compiled = native()
    assert compiled is not None
    owner = principal()
    for ends, expires, vouched in (
        (time.time() + 5, time.monotonic() + 5, True),
        (time.time() - 5, time.monotonic() + 5, False),
        (time.time() + 5, time.monotonic() - 5, False),
    ):
        path = compiled(
            entries={sha256_hex(b"t"): Entry(SlottedVerified(owner, ends, None), expires)},
            monotonic=time.monotonic,
            timestamp=time.time,
            touch=lambda key_id, now: now,
            meters=None,
            wall_clock=time.time,
            open_meter=Meters().open,
            over_limit=lambda meter, state: None,
        )
        assert (path([(b"authorization", b"Bearer t")], {}) is owner) is vouched


def _shared_node(
    implementation: str, prefix: str, now: list[float], owner: Principal
) -> tuple[Any, Any]:
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
    path = (native() if implementation == "compiled" else SteadyPath)(
        entries={sha256_hex(b"t"): Entry(SlottedVerified(owner, 1e300, None), 200.0)},
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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_shared_counts_are_taken_from_the_reserved_block_without_redis(
    implementation: str,
) -> None:
    """With counts in Redis, one request in a block goes to Redis; the rest stay here."""
    import asyncio
    import secrets

    import redis

    prefix = f"t_{secrets.token_hex(6)}"
    owner = principal(plan="enterprise")  # 1,000 a minute: blocks of 20
    _, request = _shared_node(implementation, prefix, [1_000_000.0], owner)
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
    nodes = [_shared_node(kind, prefix, now, owner)[1] for kind in IMPLEMENTATIONS]

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

    compiled = native()
    assert compiled is not None
    world = _world(0)
    owner = principal(credential_id="busy", plan="enterprise")  # 1,000 a minute
    world.entries[sha256_hex(b"busy")] = Entry(FakeVerified(owner, float("inf"), None), 200.0)
    path = world.build(compiled)
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
