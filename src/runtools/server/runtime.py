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

from runtools._version import __version__
from runtools.server.authn.authenticator import Authenticator, Verified
from runtools.server.authn.cache import VerificationCache
from runtools.server.authn.external import ExternalIssuer
from runtools.server.authn.oidc_sign_in import OidcSignIn
from runtools.server.authn.signing import Keyring
from runtools.server.authn.steady import SteadyPath, build_steady_path
from runtools.server.authn.usage import UsageRecorder
from runtools.server.authn.verification import CredentialCheck
from runtools.server.broadcast import BroadcastEventBus, build_event_bus
from runtools.server.domain.clock import Clock, SystemClock
from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.domain.events import InProcessEventBus
from runtools.server.observability.metrics import Metrics
from runtools.server.observability.security_log import SecurityEvents
from runtools.server.ratelimit import RateLimiter, build_rate_limiter
from runtools.server.sandbox import LocalSandboxDriver
from runtools.server.sandbox.cgroups import own_memory_limit
from runtools.server.sandbox.templates import TemplateStore
from runtools.server.services.api_keys import ApiKeyService
from runtools.server.services.audit import AuditLogService
from runtools.server.services.audit_chain import AuditChainService
from runtools.server.services.device import DeviceService
from runtools.server.services.idempotency import IdempotencyService
from runtools.server.services.invitations import InvitationService
from runtools.server.services.members import MemberService
from runtools.server.services.organizations import OrganizationService
from runtools.server.services.projects import ProjectService
from runtools.server.services.sandboxes.io import SandboxIO
from runtools.server.services.sandboxes.nodes import NodeRegistry
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.ssh import SandboxSsh
from runtools.server.services.sandboxes.templates import TemplateService
from runtools.server.services.sandboxes.upkeep import SandboxUpkeep
from runtools.server.services.secret_scanning import GitHubKeys, SecretScanningService
from runtools.server.services.sessions.issuing import SessionIssuer
from runtools.server.services.sessions.management import SessionManagement
from runtools.server.services.sessions.refresh import TokenRefresh
from runtools.server.services.sessions.sign_in import SignIn
from runtools.server.services.sessions.web import WebSessions
from runtools.server.services.ssh_keys import SshKeyService
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
    organizations: OrganizationService
    members: MemberService
    projects: ProjectService
    ssh_keys: SshKeyService
    invitations: InvitationService
    audit_log: AuditLogService
    # The audit log's hash chain, checked and exported (operator commands).
    audit_chain: AuditChainService
    keyring: Keyring
    sign_in: SignIn
    token_refresh: TokenRefresh
    sessions: SessionManagement
    # The dashboard's hold on a session: signed references, CSRF, re-authentication, flashes.
    web_sessions: WebSessions
    # "Sign in with …" the external OIDC issuer; None unless its client is configured.
    oidc_sign_in: OidcSignIn | None
    devices: DeviceService
    rate_limiter: RateLimiter
    # Authentication and rate limiting of a request in the steady state, in one call.
    steady_path: SteadyPath
    # Credentials checked on behalf of another service (the verify and check routes).
    credential_check: CredentialCheck
    metrics: Metrics
    sandboxes: SandboxService
    sandbox_io: SandboxIO
    sandbox_ssh: SandboxSsh
    sandbox_upkeep: SandboxUpkeep
    templates: TemplateService
    idempotency: IdempotencyService
    # GitHub's reports of our keys found in public.
    secret_scanning: SecretScanningService
    # Many nodes on one database: the registry, and the secret signing their calls.
    # None on SQLite (one process, one node).
    node_registry: NodeRegistry | None
    node_secret: bytes | None
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
        sweep_every = self.settings.unused_key_sweep_seconds
        since_usage = 0.0
        since_sweep = sweep_every  # the first check soon after start
        while not self._stop.wait(audit_every):
            try:
                self.audit.flush()
                since_usage += audit_every
                since_sweep += audit_every
                if since_usage >= usage_every:
                    since_usage = 0.0
                    self.usage.flush()
                if since_sweep >= sweep_every:
                    since_sweep = 0.0
                    if revoked := self.api_keys.revoke_unused():
                        logger.info("revoked %d keys unused past their policy", len(revoked))
            except ServiceUnavailable:
                pass  # the database announces its outage once; the next round tries again
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
    invitations = InvitationService(database, clock, bus, settings)
    sign_in = SignIn(database, clock, issuer, settings, invitations)
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
        settings,
        wall_clock=clock.timestamp,
        on_refusal=lambda limited: metrics.rate_limited.labels(limited).inc(),
    )
    steady_path = build_steady_path(authenticator, rate_limiter)
    template_store = TemplateStore(settings.sandbox_root / "templates")
    sandboxes = build_sandboxes(settings, database, clock, template_store)
    registry = (
        None if settings.is_sqlite else build_node_registry(settings, database, clock, sandboxes)
    )
    upkeep = SandboxUpkeep(
        sandboxes,
        database,
        clock,
        idle_check_seconds=settings.sandbox_idle_check_seconds,
        stop_with_service=settings.sandbox_stop_with_service,
    )
    if registry is not None:
        registry.on_lost = lambda: upkeep.reconcile("this node was declared lost")
    return Runtime(
        settings=settings,
        clock=clock,
        database=database,
        bus=bus,
        audit=audit,
        usage=usage,
        authenticator=authenticator,
        api_keys=ApiKeyService(database, clock, bus),
        organizations=OrganizationService(database, clock, bus),
        members=MemberService(database, clock, bus),
        projects=ProjectService(database, clock),
        ssh_keys=SshKeyService(database, clock),
        invitations=invitations,
        audit_log=AuditLogService(database),
        audit_chain=AuditChainService(database, clock),
        keyring=keyring,
        sign_in=sign_in,
        token_refresh=TokenRefresh(database, clock, bus, issuer, settings, sessions),
        sessions=sessions,
        web_sessions=WebSessions(database, clock, issuer, settings),
        oidc_sign_in=(
            OidcSignIn(settings, external, service_secret(database, clock, "oidc_sign_in"), clock)
            if external is not None and settings.oidc_client_id
            else None
        ),
        devices=DeviceService(database, clock, settings, sign_in),
        rate_limiter=rate_limiter,
        steady_path=steady_path,
        credential_check=CredentialCheck(
            steady_path=steady_path, authenticator=authenticator, audit=audit
        ),
        metrics=metrics,
        idempotency=IdempotencyService(
            database, clock, service_secret(database, clock, "idempotency")
        ),
        secret_scanning=SecretScanningService(
            database,
            clock,
            bus,
            GitHubKeys(
                url=settings.github_secret_scanning_keys_url,
                file=settings.github_secret_scanning_keys_file,
                refresh_seconds=settings.github_secret_scanning_keys_refresh_seconds,
            ),
            audit,
        ),
        sandboxes=sandboxes,
        sandbox_io=SandboxIO(sandboxes, max_output_bytes=settings.sandbox_max_output_bytes),
        sandbox_ssh=SandboxSsh(database, clock, sandboxes, port=settings.ssh_port),
        sandbox_upkeep=upkeep,
        templates=TemplateService(database, template_store, node=settings.sandbox_node),
        node_registry=registry,
        node_secret=None if registry is None else node_secret(settings, database, clock),
    )


def build_node_registry(
    settings: Settings, database: Database, clock: Clock, sandboxes: SandboxService
) -> NodeRegistry:
    return NodeRegistry(
        database,
        clock,
        sandboxes,
        url=settings.advertised_node_url,
        memory_budget_mib=sandboxes.memory_budget_mib,
        version=__version__,
        heartbeat_seconds=settings.node_heartbeat_seconds,
        lost_after_seconds=settings.node_lost_after_seconds,
    )


def node_secret(settings: Settings, database: Database, clock: Clock) -> bytes:
    """``RUNTOOLS_NODE_SECRET``, else one kept in the database, which only nodes read."""
    if settings.node_secret is not None:
        return settings.node_secret.get_secret_value().encode()
    return service_secret(database, clock, "node-to-node")


def build_sandboxes(
    settings: Settings, database: Database, clock: Clock, templates: TemplateStore | None = None
) -> SandboxService:
    """The sandbox service on this host's isolation driver (nothing starts until used)."""
    driver = LocalSandboxDriver(
        settings.sandbox_root,
        uid_base=settings.sandbox_uid_base,
        max_file_bytes=settings.sandbox_max_file_bytes,
        templates=templates,
    )
    return SandboxService(
        database,
        clock,
        driver,
        node=settings.sandbox_node,
        quota=settings.sandbox_quota,
        memory_budget_mib=sandbox_memory_budget(settings),
        node_lost_after_seconds=None if settings.is_sqlite else settings.node_lost_after_seconds,
        templates=driver.templates,
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
