"""``KeySet``: the hub's token-signing public keys (its JWKS), fetched and refetched.

An unknown ``kid`` means the hub may have rotated: the set is fetched again,
at most once every ``refetch_seconds`` (so a flood of tokens with made-up
``kid`` values costs the hub one request per interval, not one each).
Needs PyJWT with its crypto extra (``runtools-platform[verify]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx

from runtools.verify._errors import HubUnavailable

try:
    import jwt
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "runtools.verify needs PyJWT: pip install 'runtools-platform[verify]'"
    ) from exc

__all__ = ["ALGORITHM", "KeySet", "jwt"]

ALGORITHM = "EdDSA"


class KeySet:
    def __init__(
        self,
        *,
        url: str,
        client: httpx.AsyncClient,
        refetch_seconds: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._url = url
        self._client = client
        self._refetch_seconds = refetch_seconds
        self._monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Any | None:
        """The public key named ``kid``, refetching the set if it is unknown and may be."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_fetch():
                await self._fetch()
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return (
            self._fetched_at is None
            or self._monotonic() - self._fetched_at >= self._refetch_seconds
        )

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise HubUnavailable(f"could not fetch the hub's signing keys: {exc}") from exc
        finally:
            self._fetched_at = self._monotonic()
            self.fetches += 1
        self._keys = {
            str(key.key_id): key.key
            for key in keys
            if key.key_id and getattr(key, "algorithm_name", ALGORITHM) == ALGORITHM
        }
