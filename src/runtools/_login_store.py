"""Logins stored on this machine, one per API URL, shared by the SDK and the CLI.

``runtools login`` writes a session here (access token, refresh token,
expiry); ``runtools auth set-key`` an API key. The file is
``credentials.json`` in the config directory: ``RUNTOOLS_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/runtools`` or ``~/.config/runtools`` (``%APPDATA%\\runtools``
on Windows). The directory is created 0700 and the file is always written
whole, 0600, through a temporary file and a rename, so a reader never sees
half of it. Changes happen under ``credentials.lock`` (see
:class:`~runtools._file_lock.FileLock`).

Nothing here ever logs or prints a secret; ``StoredLogin``'s repr hides them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from runtools._exceptions import LoginStoreError
from runtools._file_lock import FileLock, LockTimeout

__all__ = [
    "CONFIG_DIR_ENV",
    "LoginStore",
    "LoginStoreError",
    "StoredLogin",
    "default_config_dir",
]

CONFIG_DIR_ENV = "RUNTOOLS_CONFIG_DIR"
_FILE_NAME = "credentials.json"
_LOCK_NAME = "credentials.lock"
_FORMAT_VERSION = 1


def default_config_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get(CONFIG_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "runtools"
    xdg = environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "runtools"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoredLogin:
    """One API URL's stored credential: a session (``type="session"``) or an API key."""

    api_url: str
    type: Literal["session", "api_key"]
    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    """When the access token expires (sessions)."""
    session_id: str | None = None
    org_id: str | None = None
    org_name: str | None = None
    user_email: str | None = None

    def seconds_left(self, now: datetime | None = None) -> float:
        if self.expires_at is None:
            return float("inf")
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()

    def with_tokens(
        self, access_token: str, refresh_token: str, expires_at: datetime
    ) -> StoredLogin:
        return replace(
            self, access_token=access_token, refresh_token=refresh_token, expires_at=expires_at
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "apiKey": self.api_key,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "sessionId": self.session_id,
            "org": {"id": self.org_id, "name": self.org_name},
            "userEmail": self.user_email,
        }

    @classmethod
    def from_json(cls, api_url: str, value: Mapping[str, Any]) -> StoredLogin | None:
        kind = value.get("type")
        org = value.get("org") if isinstance(value.get("org"), dict) else {}
        assert isinstance(org, dict)

        def text(v: Any) -> str | None:
            return v if isinstance(v, str) and v else None

        if kind == "api_key" and text(value.get("apiKey")):
            return cls(api_url=api_url, type="api_key", api_key=text(value.get("apiKey")))
        if kind == "session" and text(value.get("accessToken")) and text(value.get("refreshToken")):
            return cls(
                api_url=api_url,
                type="session",
                access_token=text(value.get("accessToken")),
                refresh_token=text(value.get("refreshToken")),
                expires_at=_time(value.get("expiresAt")),
                session_id=text(value.get("sessionId")),
                org_id=text(org.get("id")),
                org_name=text(org.get("name")),
                user_email=text(value.get("userEmail")),
            )
        return None  # a kind this version does not know: ignore, never crash


class LockedStore:
    """The store while its lock is held: read, then write, with nobody in between."""

    def __init__(self, store: LoginStore) -> None:
        self._store = store

    def get(self, api_url: str) -> StoredLogin | None:
        return self._store.get(api_url)

    def save(self, login: StoredLogin) -> None:
        logins = self._store._read()
        logins[login.api_url] = login.to_json()
        self._store._write(logins)

    def delete(self, api_url: str) -> bool:
        logins = self._store._read()
        if logins.pop(api_url, None) is None:
            return False
        self._store._write(logins)
        return True


class LoginStore:
    """The credential file in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LoginStore:
        return cls(default_config_dir(os.environ if environ is None else environ))

    @property
    def path(self) -> Path:
        return self.directory / _FILE_NAME

    def get(self, api_url: str) -> StoredLogin | None:
        value = self._read().get(api_url)
        return StoredLogin.from_json(api_url, value) if isinstance(value, dict) else None

    def save(self, login: StoredLogin) -> None:
        with self.locked() as store:
            store.save(login)

    def delete(self, api_url: str) -> bool:
        """Forget ``api_url``'s login; False if there was none."""
        if not self.path.exists():
            return False
        with self.locked() as store:
            return store.delete(api_url)

    @contextmanager
    def locked(self) -> Iterator[LockedStore]:
        self._ensure_directory()
        lock = FileLock(self.directory / _LOCK_NAME)
        try:
            lock.acquire()
        except LockTimeout as exc:
            raise LoginStoreError(f"Another runtools process holds {lock.path}") from exc
        try:
            yield LockedStore(self)
        finally:
            lock.release()

    def lock(self) -> FileLock:
        """The bare lock, for callers (the async client) that acquire it themselves."""
        self._ensure_directory()
        return FileLock(self.directory / _LOCK_NAME)

    def locked_view(self) -> LockedStore:
        """Read and write without locking; only while holding :meth:`lock`."""
        return LockedStore(self)

    # -- the file ----------------------------------------------------------------

    def _ensure_directory(self) -> None:
        try:
            if not self.directory.exists():
                self.directory.mkdir(mode=0o700, parents=True)
                os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise LoginStoreError(f"Cannot create {self.directory}: {exc.strerror}") from exc

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LoginStoreError(f"Cannot read {self.path}: {exc.strerror}") from exc
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise LoginStoreError(
                f"{self.path} is not valid JSON; delete it and sign in again"
            ) from exc
        logins = document.get("logins") if isinstance(document, dict) else None
        return dict(logins) if isinstance(logins, dict) else {}

    def _write(self, logins: dict[str, Any]) -> None:
        self._ensure_directory()
        document = {"version": _FORMAT_VERSION, "logins": logins}
        try:
            # mkstemp creates the file 0600 before anything is written to it.
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".credentials.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(document, handle, indent=2)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temporary, 0o600)
                os.replace(temporary, self.path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise LoginStoreError(f"Cannot write {self.path}: {exc.strerror}") from exc
