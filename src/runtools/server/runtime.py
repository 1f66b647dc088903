"""``Runtime``: the service's parts, wired once per app (or per operator command).

Built explicitly from ``Settings``; nothing here runs at import time.
Building a runtime applies pending migrations.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from runtools.server.authn.authenticator import Authenticator, Verified
from runtools.server.authn.cache import VerificationCache
from runtools.server.authn.external import ExternalIssuer
from runtools.server.authn.signing import Keyring
from runtools.server.authn.steady import SteadyPath, build_steady_path
from runtools.server.authn.usage import UsageRecorder
from runtools.server.broadcast import BroadcastEventBus, build_event_bus
from runtools.server.domain.clock import Clock, SystemClock
from runtools.server.domain.events import InProcessEventBus
from runtools.server.observability.metrics import Metrics
from runtools.server.observability.security_log import SecurityEvents
from runtools.server.ratelimit import RateLimiter, build_rate_limiter
from runtools.server.sandbox import LocalSandboxDriver
from runtools.server.sandbox.cgroups import own_memory_limit
from runtools.server.services.api_keys import ApiKeyService
from runtools.server.services.audit import AuditLogService
from runtools.server.services.device import DeviceService
from runtools.server.services.idempotency import IdempotencyService
from runtools.server.services.sandboxes.io import SandboxIO
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.upkeep import SandboxUpkeep
from runtools.server.services.sessions.issuing import SessionIssuer
from runtools.server.services.sessions.management import SessionManagement
from runtools.server.services.sessions.refresh import TokenRefresh
from runtools.server.services.sessions.sign_in import SignIn
from runtools.server.settings import Settings, prepare_home
from runtools.server.store import migrate
from runtools.server.store.database import Database
from runtools.server.store.repositories.audit import AuditWriter
from runtools.server.store.repositories.service_secrets import service_secret

logger = logging.getLogger("runtools.runtime")


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    database: Database
    bus: InProcessEventBus | BroadcastEventBus
    audit: AuditWriter
    usage: UsageRecorder
    authenticator: Authenticator
    api_keys: ApiKeyService
    audit_log: AuditLogService
    keyring: Keyring
    sign_in: SignIn
    token_refresh: TokenRefresh
    sessions: SessionManagement
    devices: DeviceService
    rate_limiter: RateLimiter
    # Authentication and rate limiting of a request in the steady state, in one call.
    steady_path: SteadyPath
    metrics: Metrics
    sandboxes: SandboxService
    sandbox_io: SandboxIO
    sandbox_upkeep: SandboxUpkeep
    idempotency: IdempotencyService
    _stop: threading.Event = field(default_factory=threading.Event)
    _flusher: threading.Thread | None = None

    def flush(self) -> None:
        """Write what is batched in memory (audit failures, ``lastUsedAt``)."""
        self.audit.flush()
        self.usage.flush()

    def start_background(self) -> None:
        if self._flusher is not None:
            return
        self._stop.clear()
        if isinstance(self.bus, BroadcastEventBus):
            self.bus.start()
        self._flusher = threading.Thread(
            target=self._run_flusher, name="runtools-flush", daemon=True
        )
        self._flusher.start()

    def stop_background(self) -> None:
        self._stop.set()
        if isinstance(self.bus, BroadcastEventBus):
            self.bus.stop()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
            self._flusher = None
        self.flush()

    def close(self) -> None:
        self.stop_background()
        self.database.dispose()

    def _run_flusher(self) -> None:
        audit_every = self.settings.audit_flush_seconds
        usage_every = self.settings.last_used_flush_seconds
        since_usage = 0.0
        while not self._stop.wait(audit_every):
            try:
                self.audit.flush()
                since_usage += audit_every
                if since_usage >= usage_every:
                    since_usage = 0.0
                    self.usage.flush()
            except Exception:  # keep flushing; a failed batch is retried next tick
                logger.exception("background flush failed")


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    prepare_home(settings)
    database = Database(settings)
    migrate.upgrade(database)
    bus = build_event_bus(settings)
    audit = AuditWriter(database, clock)
    usage = UsageRecorder(database)
    cache: VerificationCache[Verified] = VerificationCache(
        max_entries=settings.auth_cache_size,
        ttl=settings.auth_cache_ttl_seconds,
        negative_ttl=settings.auth_negative_cache_ttl_seconds,
    )
    # Retired signing keys verify for as long as tokens they signed can live.
    keyring = Keyring(
        database, clock, verify_for=timedelta(seconds=2 * settings.access_token_ttl_seconds)
    )
    keyring.load()
    issuer = SessionIssuer(clock, keyring, settings)
    sign_in = SignIn(database, clock, issuer, settings)
    sessions = SessionManagement(database, clock, bus, issuer)
    external = ExternalIssuer(settings, database, clock) if settings.oidc_issuer else None
    authenticator = Authenticator(
        database=database,
        clock=clock,
        settings=settings,
        cache=cache,
        audit=audit,
        usage=usage,
        keyring=keyring,
        external=external,
    )
    bus.subscribe(authenticator.forget)
    metrics = Metrics(
        cache_counts=lambda: (cache.hits + steady_path.hits, cache.misses, len(cache)),
        event_link_up=lambda: not isinstance(bus, BroadcastEventBus) or bus.connected,
    )
    security = SecurityEvents(metrics)
    audit.observers.append(security.on_audit)
    bus.subscribe(security.on_credential_event)
    if isinstance(bus, BroadcastEventBus):
        # Events may be missed while the link is down: trust the cache only briefly.
        degraded = settings.auth_cache_degraded_ttl_seconds
        bus.watch(lambda connected: cache.limit_ttl(None if connected else degraded))
    rate_limiter = build_rate_limiter(
        settings, on_refusal=lambda limited: metrics.rate_limited.labels(limited).inc()
    )
    steady_path = build_steady_path(authenticator, rate_limiter)
    sandboxes = build_sandboxes(settings, database, clock)
    return Runtime(
        settings=settings,
        clock=clock,
        database=database,
        bus=bus,
        audit=audit,
        usage=usage,
        authenticator=authenticator,
        api_keys=ApiKeyService(database, clock, bus),
        audit_log=AuditLogService(database),
        keyring=keyring,
        sign_in=sign_in,
        token_refresh=TokenRefresh(database, clock, bus, issuer, settings, sessions),
        sessions=sessions,
        devices=DeviceService(database, clock, settings, sign_in),
        rate_limiter=rate_limiter,
        steady_path=steady_path,
        metrics=metrics,
        idempotency=IdempotencyService(
            database, clock, service_secret(database, clock, "idempotency")
        ),
        sandboxes=sandboxes,
        sandbox_io=SandboxIO(sandboxes, max_output_bytes=settings.sandbox_max_output_bytes),
        sandbox_upkeep=SandboxUpkeep(
            sandboxes, database, clock, idle_check_seconds=settings.sandbox_idle_check_seconds
        ),
    )


def build_sandboxes(settings: Settings, database: Database, clock: Clock) -> SandboxService:
    """The sandbox service on this host's isolation driver (nothing starts until used)."""
    driver = LocalSandboxDriver(
        settings.sandbox_root,
        uid_base=settings.sandbox_uid_base,
        max_file_bytes=settings.sandbox_max_file_bytes,
    )
    return SandboxService(
        database,
        clock,
        driver,
        node=settings.sandbox_node,
        quota=settings.sandbox_quota,
        memory_budget_mib=sandbox_memory_budget(settings),
    )


def sandbox_memory_budget(settings: Settings) -> int:
    """MiB this node promises its sandboxes: the setting, else 3/4 of what it may use."""
    host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    usable = min(host, own_memory_limit() or host) // (1024 * 1024)
    budget = settings.sandbox_memory_budget_mib
    if budget is None:
        return max(1, usable * 3 // 4)
    if budget > usable:
        logger.warning(
            "RUNTOOLS_SANDBOX_MEMORY_BUDGET_MIB=%d is more than the %d MiB this service may "
            "use: sandboxes can run it out of memory",
            budget,
            usable,
        )
    return budget
