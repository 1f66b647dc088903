"""``Verifier``: a credential in, a ``VerifiedPrincipal`` out, or a refusal.

- An access token signed by the hub (``iss`` is ``issuer``) is verified
  offline: signature against the hub's JWKS (``_jwks.KeySet``), expiry,
  issuer and audience. No hub call per request.
- Anything else (API keys, tokens of an external issuer the hub trusts)
  is asked of the hub, ``POST /v1/auth/verify`` with this service's own key
  (scope ``auth:verify``), and the answer is cached (``_cache.KeyCache``).

Every refusal of the credential is one ``CredentialRefused`` (401, the same
message whatever the reason; 403 naming a scope it lacks). Whatever keeps
the hub from answering (down, its 5xx, a refusal of this service's own
key) is ``HubUnavailable``: a 503, never "allowed".

Settings resolve argument → environment (``RUNTOOLS_AUTH_URL``, then
``RUNTOOLS_API_URL``; ``RUNTOOLS_API_KEY`` for the service's key) → default.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from runtools._version import __version__
from runtools.verify._cache import KeyCache, digest
from runtools.verify._errors import CredentialRefused, HubUnavailable
from runtools.verify._jwks import ALGORITHM, KeySet, jwt  # jwt: says how to install PyJWT
from runtools.verify._principal import VerifiedPrincipal

DEFAULT_URL = "http://127.0.0.1:8700"
API_KEY_PREFIXES = ("rt_live_", "rt_test_")
MAX_CREDENTIAL_LENGTH = 4096
RawHeaders = Iterable[tuple[bytes, bytes]]


def presented_credential(headers: RawHeaders | Mapping[str, str]) -> str | None:
    """The one credential a request carries (``X-API-Key`` or ``Authorization: Bearer``).

    None when there is none; two different ones are a 400 ``CredentialRefused``.
    """
    items = (
        [(k.lower(), v) for k, v in headers.items()]
        if isinstance(headers, Mapping)
        else [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
    )
    api_key = next((v.strip() for k, v in items if k == "x-api-key"), None)
    authorization = next((v.strip() for k, v in items if k == "authorization"), None)
    bearer = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else ""
    if api_key is not None and bearer is not None and api_key != bearer:
        raise CredentialRefused(400, "Send one credential: X-API-Key or Authorization, not both")
    return api_key if api_key is not None else bearer


class Verifier:
    """Verifies RunTools credentials for a service; share one per process.

    ``cache_ttl_seconds`` bounds how long an API key revoked at the hub still
    works here; ``cache_size`` bounds the memory its answers take.
    """

    def __init__(
        self,
        *,
        auth_url: str | None = None,
        service_key: str | None = None,
        cache_ttl_seconds: float = 10.0,
        negative_cache_ttl_seconds: float = 2.0,
        cache_size: int = 10_000,
        jwks_refetch_seconds: float = 30.0,
        issuer: str = "runtools",
        audience: str = "runtools-api",
        timeout: float = 5.0,
        http_client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        env = os.environ
        url = auth_url or env.get("RUNTOOLS_AUTH_URL") or env.get("RUNTOOLS_API_URL") or DEFAULT_URL
        self.auth_url = url.rstrip("/")
        self._service_key = service_key or env.get("RUNTOOLS_API_KEY")
        self._client = http_client or httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": f"runtools-verify/{__version__}"}
        )
        self._owns_client = http_client is None
        self._cache = KeyCache(
            ttl=cache_ttl_seconds,
            negative_ttl=min(negative_cache_ttl_seconds, cache_ttl_seconds),
            size=cache_size,
            monotonic=monotonic,
        )
        self.keys = KeySet(
            url=f"{self.auth_url}/.well-known/jwks.json",
            client=self._client,
            refetch_seconds=jwks_refetch_seconds,
            monotonic=monotonic,
        )
        self._issuer = issuer
        self._audience = audience
        self._now = now
        self.hub_calls = 0

    async def verify(
        self, credential: str | None, required_scopes: Sequence[str] = ()
    ) -> VerifiedPrincipal:
        """The principal ``credential`` stands for, if it may use every required scope."""
        if not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
            raise CredentialRefused()
        principal = await self._principal(credential)
        for scope in required_scopes:
            if not principal.allows(scope):
                raise CredentialRefused.lacking(scope)
        return principal

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _principal(self, credential: str) -> VerifiedPrincipal:
        if not credential.startswith(API_KEY_PREFIXES) and credential.count(".") == 2:
            claims = self._unverified_claims(credential)
            if claims.get("iss") == self._issuer:
                return await self._offline(credential)
        return await self._ask_hub(credential)

    # -- access tokens, offline ---------------------------------------------------

    @staticmethod
    def _unverified_claims(token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise CredentialRefused() from None
        return claims

    async def _offline(self, token: str) -> VerifiedPrincipal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialRefused() from None
        if header.get("alg") != ALGORITHM:
            raise CredentialRefused()
        key = await self.keys.key(str(header.get("kid", "")))
        if key is None:
            raise CredentialRefused()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "org", "sid"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise CredentialRefused() from None
        exp = claims["exp"]
        if not isinstance(exp, int | float) or not math.isfinite(exp) or exp <= self._now():
            raise CredentialRefused()
        return VerifiedPrincipal.from_claims(claims)

    # -- everything else, by the hub ----------------------------------------------

    async def _ask_hub(self, credential: str) -> VerifiedPrincipal:
        key = digest(credential)
        found, principal = self._cache.get(key)
        if found:
            if principal is None:
                raise CredentialRefused()
            return principal
        if not self._service_key:
            raise HubUnavailable("no service key: pass service_key= or set RUNTOOLS_API_KEY")
        self.hub_calls += 1
        try:
            response = await self._client.post(
                f"{self.auth_url}/v1/auth/verify",
                json={"credential": credential},
                headers={"X-API-Key": self._service_key},
            )
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"the hub did not answer: {type(exc).__name__}") from exc
        if response.status_code == 200:
            principal = VerifiedPrincipal.from_me(response.json()["data"])
            self._cache.put(key, principal)
            return principal
        refused_credential = response.headers.get("x-runtools-refused") == "credential"
        if response.status_code == 400 or (refused_credential and response.status_code == 401):
            self._cache.put(key, None)
            raise CredentialRefused()
        raise HubUnavailable(
            f"the hub refused this service ({response.status_code}): "
            + (
                "is its key valid, with scope auth:verify?"
                if response.status_code in (401, 403)
                else response.text[:200]
            )
        )
