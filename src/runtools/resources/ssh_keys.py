"""``rt.ssh_keys``: register, list, inspect and remove your SSH public keys.

A registered key opens SSH sessions into the sandboxes you may use
(``runtools sandbox ssh NAME``). Only public keys are taken: ed25519,
ECDSA (nistp256/384/521) and RSA of at least 3072 bits; the server refuses
a private key and never stores it.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from runtools._models import SshKey
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment

__all__ = ["AsyncSshKeys", "SshKeys"]

_PATH = "/ssh-keys"


def _key_path(key_id: str) -> str:
    return f"{_PATH}/{path_segment(key_id, name='key_id')}"


def _list_params(limit: int | None, cursor: str | None, all: bool) -> dict[str, Any]:
    # `all` is sent only when asked for: it is an admin-only option.
    return {"limit": limit, "cursor": cursor, "all": True if all else None}


def _add_body(
    name: str, public_key: str | None, file: str | PathLike[str] | None
) -> dict[str, Any]:
    if (public_key is None) == (file is None):
        raise ValueError("pass exactly one of public_key and file")
    text = public_key if public_key is not None else Path(file or "").read_text()
    return {"name": name, "publicKey": text.strip()}


class SshKeys(SyncResource):
    def add(
        self,
        name: str,
        public_key: str | None = None,
        *,
        file: str | PathLike[str] | None = None,
    ) -> SshKey:
        """Register a public key, given as text (one line of a ``.pub`` file) or a ``file``."""
        body = _add_body(name, public_key, file)
        return self._client._request("POST", _PATH, json=body).model(SshKey)

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, all: bool = False
    ) -> SyncPager[SshKey]:
        """Your keys, or with ``all=True`` (admins) every key of the organization.

        Iterating the result walks every page; ``limit`` is the page size.
        """

        def fetch(page_cursor: str | None) -> CursorPage[SshKey]:
            params = _list_params(limit, page_cursor, all)
            return self._client._request("GET", _PATH, params=params).page(SshKey)

        return SyncPager(fetch, cursor=cursor)

    def get(self, key_id: str) -> SshKey:
        return self._client._request("GET", _key_path(key_id)).model(SshKey)

    def remove(self, key_id: str) -> SshKey:
        """Remove a key; it opens no new SSH session from then on."""
        return self._client._request("DELETE", _key_path(key_id)).model(SshKey)


class AsyncSshKeys(AsyncResource):
    async def add(
        self,
        name: str,
        public_key: str | None = None,
        *,
        file: str | PathLike[str] | None = None,
    ) -> SshKey:
        """Register a public key, given as text (one line of a ``.pub`` file) or a ``file``."""
        body = _add_body(name, public_key, file)
        return (await self._client._request("POST", _PATH, json=body)).model(SshKey)

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, all: bool = False
    ) -> AsyncPager[SshKey]:
        """Your keys, or with ``all=True`` (admins) every key of the organization.

        ``async for`` over the result walks every page; ``limit`` is the page size.
        """

        async def fetch(page_cursor: str | None) -> CursorPage[SshKey]:
            params = _list_params(limit, page_cursor, all)
            return (await self._client._request("GET", _PATH, params=params)).page(SshKey)

        return AsyncPager(fetch, cursor=cursor)

    async def get(self, key_id: str) -> SshKey:
        return (await self._client._request("GET", _key_path(key_id))).model(SshKey)

    async def remove(self, key_id: str) -> SshKey:
        """Remove a key; it opens no new SSH session from then on."""
        return (await self._client._request("DELETE", _key_path(key_id))).model(SshKey)
