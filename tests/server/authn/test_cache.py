from runtools.server.authn.cache import VerificationCache


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl_and_misses_sooner() -> None:
    tick = Ticker()
    cache: VerificationCache[str] = VerificationCache(
        max_entries=10, ttl=30, negative_ttl=5, monotonic=tick
    )
    cache.put("hit", "principal")
    cache.put("miss", None)
    assert cache.get("hit") == (True, "principal")
    assert cache.get("miss") == (True, None)
    tick.now = 6
    assert cache.get("miss") == (False, None)
    assert cache.get("hit") == (True, "principal")
    tick.now = 31
    assert cache.get("hit") == (False, None)


def test_a_flood_of_keys_cannot_grow_the_cache_past_its_bound() -> None:
    cache: VerificationCache[str] = VerificationCache(max_entries=100, ttl=30, negative_ttl=5)
    cache.put("keep", "principal")
    for i in range(10_000):
        cache.put(f"random-{i}", None)
    assert len(cache) == 100
    assert cache.get("keep") == (False, None)  # least recently used went first


def test_discard_where_drops_matching_positive_entries() -> None:
    cache: VerificationCache[str] = VerificationCache(max_entries=10, ttl=30, negative_ttl=5)
    cache.put("a", "key_1")
    cache.put("b", "key_2")
    assert cache.discard_where(lambda v: v == "key_1") == 1
    assert cache.get("a") == (False, None)
    assert cache.get("b") == (True, "key_2")


def test_a_fill_that_raced_an_invalidation_is_not_stored() -> None:
    cache: VerificationCache[str] = VerificationCache(max_entries=10, ttl=30, negative_ttl=5)
    epoch = cache.epoch  # a request starts reading the store...
    cache.discard_where(lambda v: v == "key_1")  # ...the key is revoked meanwhile
    cache.put("a", "key_1", epoch=epoch)
    assert cache.get("a") == (False, None)
    cache.put("a", "key_1", epoch=cache.epoch)
    assert cache.get("a") == (True, "key_1")


def test_limited_trust_forgets_everything_and_shortens_lifetimes_until_lifted() -> None:
    tick = Ticker()
    cache: VerificationCache[str] = VerificationCache(
        max_entries=10, ttl=30, negative_ttl=5, monotonic=tick
    )
    cache.put("old", "principal")
    cache.limit_ttl(2)
    assert cache.get("old") == (False, None)
    cache.put("new", "principal")
    tick.now = 2.5
    assert cache.get("new") == (False, None)
    cache.put("new", "principal")
    cache.limit_ttl(None)
    assert cache.get("new") == (False, None)  # reconnection forgets what may be stale
    cache.put("new", "principal")
    tick.now = 30
    assert cache.get("new") == (True, "principal")


def test_the_entries_view_is_the_live_store_with_its_expiries() -> None:
    """The steady path reads ``entries``: every invalidation must show in that same dict."""
    tick = Ticker()
    cache: VerificationCache[str] = VerificationCache(
        max_entries=10, ttl=30, negative_ttl=5, monotonic=tick
    )
    view = cache.entries
    cache.put("hit", "principal")
    cache.put("miss", None)
    assert view["hit"] == ("principal", 30.0)
    assert view["miss"] == (None, 5.0)
    assert cache.monotonic is tick
    cache.discard_where(lambda value: value == "principal")
    assert "hit" not in view
    cache.limit_ttl(2)
    assert view is cache.entries
    assert len(view) == 0
