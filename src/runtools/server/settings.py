"""Service configuration: one ``Settings`` object, read from ``RUNTOOLS_*``.

Values resolve from keyword arguments, then the environment, then a ``.env``
file in the working directory, then the defaults below. Nothing is read at
import time: callers build ``Settings()`` and hand it to ``create_app``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8700


def _default_home() -> Path:
    return Path("~/.runtools").expanduser()


class Settings(BaseSettings):
    """Every setting of the service. See ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        env_prefix="RUNTOOLS_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=_default_home)
    """Where the embedded database and other state live (mode 0700)."""

    database_url: str | None = None
    """``postgresql://…`` for the scale-out path; SQLite under ``home`` when unset."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT

    max_body_bytes: int = 1_048_576
    """Largest accepted request body; larger bodies get 413."""

    max_header_bytes: int = 16_384
    """Largest accepted total size of request headers; larger get 431."""

    auth_cache_size: int = 10_000
    """Verified credentials (and misses) kept in memory per process."""

    auth_cache_ttl_seconds: float = 30.0
    """Upper bound on how long a cached verification is trusted without events."""

    auth_negative_cache_ttl_seconds: float = 5.0

    last_used_flush_seconds: float = 30.0
    """How often coalesced ``lastUsedAt`` updates are written."""

    unused_key_sweep_seconds: float = Field(default=3600.0, gt=0)
    """How often keys unused past their organization's ``revokeUnusedAfterDays`` are revoked."""

    audit_flush_seconds: float = 0.5

    trust_forwarded_for: bool = False
    """Take the client IP from ``X-Forwarded-For`` (only behind a trusted proxy)."""

    # -- sessions ----------------------------------------------------------------

    public_url: str | None = None
    """The service's address as browsers and the CLI reach it (device-login links);
    derived from each request when unset."""

    jwt_issuer: str = "runtools"
    jwt_audience: str = "runtools-api"
    access_token_ttl_seconds: int = Field(default=300, ge=30, le=86_400)
    session_absolute_ttl_hours: int = Field(default=720, ge=1)
    """A session ends this long after sign-in, however active (default 30 days)."""
    session_idle_ttl_hours: int = Field(default=168, ge=1)
    """A session ends when not refreshed for this long (default 7 days)."""
    refresh_reuse_grace_seconds: float = Field(default=10.0, ge=0, le=60)
    """Concurrent refreshes of one token within this window get the same successor."""

    signup: Literal["closed", "open"] = "closed"
    """``open`` lets anyone create a user and their first organization."""

    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_seconds: int = 900

    device_code_ttl_seconds: int = Field(default=300, ge=60, le=1800)
    device_poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    device_max_wrong_codes: int = 5
    """Wrong user codes allowed per user and per address in a code's lifetime."""

    # -- external identity provider (OIDC) ------------------------------------------

    oidc_issuer: str | None = None
    """Accept bearer JWTs from this issuer as sessions (e.g. WorkOS)."""
    oidc_jwks_url: str | None = None
    """Its keys; read from its discovery document when unset (needs a client id)."""
    oidc_audience: str | None = None
    """The ``aud`` of its bearer tokens; the client id when unset."""
    oidc_client_id: str | None = None
    """This service's client at the issuer: enables "Sign in with …" on the sign-in page."""
    oidc_client_secret: SecretStr | None = None
    """The client's secret (``client_secret_basic``); unset for a public client (PKCE only)."""
    oidc_display_name: str | None = None
    """The issuer's name on the sign-in button; its host when unset."""
    oidc_scopes: str = "openid email profile"
    """What the sign-in asks the issuer for (``openid`` is always asked)."""
    oidc_org_claim: str = "org_id"
    oidc_role_claim: str = "role"
    oidc_email_claim: str = "email"
    oidc_jwks_min_refresh_seconds: float = 60.0
    """An unknown key id refetches the issuer's JWKS at most this often."""

    # -- leaked keys: GitHub secret scanning (see docs/security.md) -----------------

    github_secret_scanning_keys_url: str = Field(
        default="https://api.github.com/meta/public_keys/secret_scanning",
        pattern=r"^https?://\S+$",
    )
    """Where GitHub publishes the keys that sign its secret-scanning reports."""

    github_secret_scanning_keys_file: Path | None = None
    """Read that keys document from this file instead (offline, GitHub Enterprise Server)."""

    github_secret_scanning_keys_refresh_seconds: float = Field(default=300.0, ge=1)
    """The keys document is fetched at most this often (an unknown key, or an hour's age)."""

    # -- scale-out (see docs/configuration.md, "Many nodes") --------------------

    redis_url: str | None = None
    """``redis://…``: shared rate-limit counters and the revocation broadcast."""

    namespace: str = Field(default="runtools", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    """Names this deployment's shared state: Redis keys and the event channel."""

    auth_cache_degraded_ttl_seconds: float = 2.0
    """Longest a cached verification is trusted while the event connection is down."""

    rate_limits: bool = True
    """Enforce per-credential and per-address request limits."""

    ip_rate_limit_per_minute: int = Field(default=60, ge=1)
    """Requests per minute per client address on rate-limited public routes."""

    metrics: Literal["off", "on"] = "off"
    """Serve Prometheus metrics at ``/metrics``."""

    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` demands ``Authorization: Bearer <token>``."""

    node_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+$")
    """Where other nodes reach this one (``http://10.0.0.5:8700``); host and port when unset."""

    node_secret: SecretStr | None = Field(default=None, min_length=32)
    """Signs node-to-node requests; derived from a secret kept in the database when unset."""

    node_heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often a node records that it is alive."""

    node_lost_after_seconds: float = Field(default=30.0, gt=0)
    """A node silent this long is lost: its sandboxes fail and free their quota."""

    ssh_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve SSH into sandboxes on this port (on ``host``); off when unset. 0: any free port."""

    ssh_public_host: str | None = Field(default=None, min_length=1, max_length=255)
    """The host users reach SSH at, as ``GET /v1/sandboxes/{id}/ssh`` says; the API's when unset."""

    # -- sandboxes (see docs/configuration.md) --------------------------------

    sandbox_quota: int = Field(default=10, ge=0)
    """Live (not destroyed, not failed) sandboxes an organization may have at once."""

    sandbox_memory_budget_mib: int | None = Field(default=None, ge=1)
    """Memory this node promises its live sandboxes in all (their ``memory`` summed).

    Unset: three quarters of the host's RAM, or of the service's own cgroup
    limit if that is lower. Files in a sandbox live in RAM and count against
    its ``memory``, so this also bounds them.
    """

    sandbox_state_dir: Path | None = None
    """The isolation driver's private state; ``home/sandboxes`` when unset."""

    sandbox_uid_base: int = Field(default=200_000, ge=1000)
    """First host uid handed to sandboxes (one uid per sandbox)."""

    sandbox_node: str = Field(default_factory=socket.gethostname, min_length=1, max_length=255)
    """This node's name in sandbox records: a restart reconciles only its own."""

    sandbox_max_file_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    """Largest file uploaded to or read from a sandbox (the upload route's body limit)."""

    sandbox_max_archive_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    """Largest tar stream uploaded to a sandbox at once (the archive route's body limit)."""

    sandbox_max_output_bytes: int = Field(default=1024 * 1024, ge=0)
    """Output kept per stream (stdout, stderr) of one command; the rest is discarded."""

    sandbox_idle_check_seconds: float = Field(default=5.0, gt=0)
    """How often sandboxes past their ``idleTimeout`` are looked for and paused."""

    sandbox_stop_with_service: bool = False
    """Fail and reap this node's sandboxes when the service stops cleanly (for a laptop).

    Off by default: sandboxes outlive a stop, an upgrade or a crash of the
    service, and the next start adopts them. ``runtools admin sandboxes drain``
    destroys them on purpose."""

    @field_validator("home", "sandbox_state_dir", "github_secret_scanning_keys_file", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        if isinstance(value, str):
            return Path(os.path.expanduser(value))
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split(":", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres", "postgresql+psycopg"}:
            raise ValueError("RUNTOOLS_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        discovered = bool(self.oidc_client_id)  # the JWKS from discovery, the client id as aud
        if self.oidc_issuer and not discovered and not (self.oidc_jwks_url and self.oidc_audience):
            raise ValueError(
                "RUNTOOLS_OIDC_ISSUER needs RUNTOOLS_OIDC_JWKS_URL and RUNTOOLS_OIDC_AUDIENCE,"
                " or RUNTOOLS_OIDC_CLIENT_ID (the rest is then discovered)"
            )
        if self.oidc_client_id and not self.oidc_issuer:
            raise ValueError("RUNTOOLS_OIDC_CLIENT_ID needs RUNTOOLS_OIDC_ISSUER")
        return self

    @field_validator(
        "redis_url",
        "metrics_token",
        "node_url",
        "node_secret",
        "github_secret_scanning_keys_file",
        "ssh_port",
        "ssh_public_host",
        "oidc_client_id",
        "oidc_client_secret",
        "oidc_display_name",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is not None and value.split(":", 1)[0] not in {"redis", "rediss", "unix"}:
            raise ValueError("RUNTOOLS_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def sandbox_root(self) -> Path:
        return self.sandbox_state_dir or self.home / "sandboxes"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "runtools.db"

    @property
    def effective_database_url(self) -> str:
        if self.database_url is None:
            return f"sqlite:///{self.sqlite_path}"
        url = self.database_url
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def advertised_node_url(self) -> str:
        """``node_url``, else this server's own address (the host name for a wildcard bind)."""
        if self.node_url:
            return self.node_url
        wildcard = self.host in {"0.0.0.0", "::", ""}  # noqa: S104 - naming it, not binding
        host = socket.gethostname() if wildcard else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def libpq_database_url(self) -> str | None:
        """The PostgreSQL URL as libpq (psycopg) spells it; None on SQLite."""
        if self.is_sqlite:
            return None
        return "postgresql://" + self.effective_database_url.split("://", 1)[1]


def prepare_home(settings: Settings) -> None:
    """Create ``RUNTOOLS_HOME`` (and its parents) if needed, and make it mode 0700.

    On every database: on PostgreSQL it still holds the sandboxes' state.
    """
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
