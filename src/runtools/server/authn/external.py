"""An external OpenID Connect issuer (WorkOS or any other) as a source of sessions.

Bearer JWTs whose ``iss`` is the configured issuer are verified against the
issuer's JWKS and mapped to local users and organizations, created on first
sight. The JWKS is cached: an unknown ``kid`` refetches it at most once per
``oidc_jwks_min_refresh_seconds`` (so forged kids cannot amplify into
requests to the issuer), and cached keys keep working while the issuer is
unreachable.

With a client id configured, the same issuer also signs people in from the
browser (``oidc_sign_in``): its discovery document (``metadata``) names the
endpoints and, unless configured, the JWKS; the ID token it returns is
verified here (``sign_in``) for the client id and the sign-in's nonce, and
mapped to local users and organizations by the same rule as bearer tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import jwt

from runtools.server.authn.signing import InvalidToken, decode_verified
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Conflict
from runtools.server.domain.ids import new_id
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import Role
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import Organization, User
from runtools.server.store.repositories import external_identities, organizations

if TYPE_CHECKING:
    from runtools.server.store.database import Session

#: Asymmetric algorithms only: an HMAC "signature" made with a public key is refused.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})
DISCOVERY = "/.well-known/openid-configuration"
# A first request that lost the race to make its user finds it on the next try.
SETTLE_ATTEMPTS = 3
T = TypeVar("T")


class IssuerUnavailable(Exception):
    """The issuer's discovery document could not be read, or names another issuer."""


class ExternalIssuer:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        monotonic: Any = time.monotonic,
    ) -> None:
        assert settings.oidc_issuer
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._jwks_url = settings.oidc_jwks_url
        audience = settings.oidc_audience or settings.oidc_client_id
        assert audience
        self._audience = audience
        self._metadata: dict[str, Any] | None = None
        self._metadata_lock = threading.Lock()
        self._settings = settings
        self._database = database
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    # -- discovery ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document: read once, read again while it fails."""
        with self._metadata_lock:
            if self._metadata is None:
                url = self.issuer.rstrip("/") + DISCOVERY
                try:
                    response = httpx.get(url, timeout=5.0, follow_redirects=False)
                    response.raise_for_status()
                    document = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise IssuerUnavailable(f"{url}: {exc}") from exc
                if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                    raise IssuerUnavailable(f"{url} names another issuer")
                self._metadata = document
            return self._metadata

    # -- keys ------------------------------------------------------------------

    def _key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            due = (
                self._last_fetch is None
                or self._monotonic() - self._last_fetch
                >= self._settings.oidc_jwks_min_refresh_seconds
            )
            if due:
                self._fetch()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown_kid")
        return key

    def _fetch(self) -> None:
        self._last_fetch = self._monotonic()
        self.fetches += 1
        try:
            jwks_url = self._jwks_url or str(self.metadata()["jwks_uri"])
            response = httpx.get(jwks_url, timeout=5.0, follow_redirects=False)
            response.raise_for_status()
            document = response.json()
            keys = {
                str(entry["kid"]): jwt.PyJWK(entry)
                for entry in document.get("keys", [])
                if isinstance(entry, dict) and "kid" in entry
            }
        except (
            IssuerUnavailable,
            httpx.HTTPError,
            ValueError,
            KeyError,
            jwt.PyJWTError,
            json.JSONDecodeError,
        ):
            return  # keep the keys we have: a briefly unreachable issuer breaks nothing
        self._keys = keys

    # -- tokens ----------------------------------------------------------------

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The claims of a token the issuer signed for ``audience`` (bearer tokens' by default)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed") from exc
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken("wrong_algorithm")
        key = self._key(str(header.get("kid", "")))
        claims = decode_verified(
            token,
            key,
            algorithm=str(algorithm),
            audience=audience or self._audience,
            issuer=self.issuer,
            require=["exp", "sub"],
            now=self._clock.now().timestamp(),
        )
        if not isinstance(claims.get(self._settings.oidc_org_claim), str):
            raise InvalidToken("missing_org_claim")
        return claims

    def principal_for(self, token: str) -> Principal:
        """Verify, then map the subject and organization to local ones (created on first sight)."""
        claims = self.verify(token)
        token_id = claims.get("jti") or hashlib.sha256(token.encode()).hexdigest()[:24]
        return self._settled(
            claims,
            lambda user, org, role: Principal.for_session(
                org_id=org.id,
                org_name=org.name,
                plan=org.plan,
                user_id=user.id,
                user_email=user.email,
                user_display_name=user.display_name,
                role=role,
                session_id=f"ext_{token_id}"[:40],
                client_name=urlsplit(self.issuer).netloc or self.issuer,
                expires_at=datetime.fromtimestamp(claims["exp"], tz=self._clock.now().tzinfo),
            ),
        )

    def sign_in(self, id_token: str, nonce: str) -> tuple[str, str]:
        """The local user and organization of a browser sign-in's ID token (made on first sight).

        Verified as a bearer token is, but for this service's client id, and
        bound to the sign-in that asked for it by its nonce.
        """
        assert self.client_id
        claims = self.verify(id_token, audience=self.client_id)
        audiences = claims.get("aud")
        several = isinstance(audiences, list) and len(audiences) > 1
        if several and claims.get("azp") != self.client_id:
            raise InvalidToken("wrong_audience")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise InvalidToken("wrong_nonce")
        return self._settled(claims, lambda user, org, _: (user.id, org.id))

    def _settled(self, claims: dict[str, Any], read: Callable[[User, Organization, str], T]) -> T:
        """``read`` of the local user, organization and role ``claims`` map to, committed.

        A subject's first requests may arrive together, each making the same
        user, organization and links: the database's unique constraints pick
        one, and the others, refused, try again and find what it made.
        """
        attempt = 1
        while True:
            with self._database.session() as session:
                try:
                    user, org, role = self._mapped(session, claims)
                    session.commit()
                except Conflict:
                    if attempt == SETTLE_ATTEMPTS:
                        raise
                    attempt += 1
                    continue
                return read(user, org, role)

    def _mapped(self, session: Session, claims: dict[str, Any]) -> tuple[User, Organization, str]:
        """The user, organization and role verified claims name, made or updated to match."""
        user = self._user(session, claims)
        org = self._org(session, str(claims[self._settings.oidc_org_claim]))
        role = self._membership(session, org, user, claims.get(self._settings.oidc_role_claim))
        return user, org, role

    def _user(self, session: Session, claims: dict[str, Any]) -> User:
        subject = str(claims["sub"])
        linked = external_identities.linked_user(session, self.issuer, subject)
        if linked is not None:
            return linked
        email = claims.get(self._settings.oidc_email_claim)
        verified = claims.get("email_verified") is True
        user = None
        if isinstance(email, str) and verified:
            # Only a verified address may claim an existing local account.
            user = organizations.user_with_email(session, email.strip().lower())
        if user is None:
            address = email if isinstance(email, str) else None
            taken = address is not None and (
                organizations.user_with_email(session, address.strip().lower()) is not None
            )
            if not address or taken:
                digest = hashlib.sha256(f"{self.issuer}|{subject}".encode()).hexdigest()[:16]
                address = f"{digest}@external.invalid"
            user = organizations.create_user(
                session, self._clock, address, display_name=claims.get("name")
            )
        external_identities.link_user(session, self.issuer, subject, user, self._clock.now())
        return user

    def _org(self, session: Session, external_id: str) -> Organization:
        linked = external_identities.linked_organization(session, self.issuer, external_id)
        if linked is not None:
            return linked
        base = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in external_id)[:80]
        name = base or "external"
        while organizations.org_named(session, name) is not None:
            name = f"{base[:70]}-{new_id('x')[-6:]}"
        org = organizations.create_org(session, self._clock, name)
        external_identities.link_organization(
            session, self.issuer, external_id, org, self._clock.now()
        )
        return org

    def _membership(self, session: Session, org: Organization, user: User, claimed: Any) -> str:
        role = Role.ADMIN.value if claimed == Role.ADMIN.value else Role.MEMBER.value
        existing = organizations.membership(session, org.id, user.id)
        if existing is None:
            organizations.add_member(session, self._clock, org, user, role)
        elif existing.role != role:
            existing.role = role  # the issuer is the source of truth for its users' roles
        return role
