"""An organization's key policy: the longest a key may live, and whether it must expire.

Admins set it (``/v1/organizations/{id}/policy``); the key service asks it
of every key it makes or rotates in the organization, about the key's end
as it will be stored (after a key-made key is cut to its maker's end). It
governs new keys and successors only: keys that exist keep their expiry.
Honeytokens, which never authenticate, are not held to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runtools.server.domain.durations import DurationError, parse_duration
from runtools.server.domain.errors import Forbidden, InvalidRequest

__all__ = ["MAX_KEY_LIFETIME", "KeyPolicy", "checked_lifetime"]

#: The longest any key may be asked to live (``expiresIn``), policy or not.
MAX_KEY_LIFETIME = timedelta(days=5 * 365)


def checked_lifetime(text: str) -> timedelta:
    """A policy's ``maxKeyLifetime`` (``"90d"``), or a 400 saying what is wrong."""
    try:
        return parse_duration(text, maximum=MAX_KEY_LIFETIME)
    except DurationError as exc:
        raise InvalidRequest(f"maxKeyLifetime: {exc}") from exc


@dataclass(frozen=True)
class KeyPolicy:
    max_lifetime: str | None = None
    require_expiry: bool = False

    def check(self, expires_at: datetime | None, now: datetime) -> None:
        """Refuse (403, saying until when) a key ending at ``expires_at`` (None: never)."""
        if self.max_lifetime is not None:
            latest = now + checked_lifetime(self.max_lifetime)
            if expires_at is None or expires_at > latest:
                asked = "never to expire" if expires_at is None else f"until {_at(expires_at)}"
                raise Forbidden(
                    f"This organization's policy lets an API key live at most "
                    f"{self.max_lifetime}, until {_at(latest)}; this one would live {asked}. "
                    f"Send an expiresIn of at most {self.max_lifetime}"
                )
        if self.require_expiry and expires_at is None:
            raise Forbidden(
                "This organization's policy requires every API key to expire: "
                "send an expiresIn (such as 90d)"
            )


def _at(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")
