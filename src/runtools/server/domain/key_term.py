"""When an API key stops working, why it is refused, and what its status says: one rule.

A key ends at its expiry or at its revocation, whichever comes first. A
revocation in the future is the end of a rotation's grace period: until
then the key works and its status is ``expiring``. A key whose owner has
left the organization has not ended (it works again if they come back)
but is refused while they are away, and its status says so:
``owner_removed``. A honeytoken (``isCanary``) never works at all: it ends
before it starts, and its status is ``canary`` until it is revoked or expires.

Every reader of a key's end asks ``KeyTerm``: the key service for the
status it shows, the authenticator for the reason it refuses, and the
cached steady path for ``ends``, the one number it compares per request.
Nothing here reads a clock of its own or the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "ACTIVE",
    "CANARY",
    "EXPIRED",
    "EXPIRING",
    "OWNER_REMOVED",
    "REVOKED",
    "KeyTerm",
    "ends_at",
]

ACTIVE = "active"
EXPIRING = "expiring"  # in a rotation's grace period: works until its revocation
EXPIRED = "expired"
REVOKED = "revoked"
OWNER_REMOVED = "owner_removed"  # refused while its owner is not a member; not ended
CANARY = "canary"  # a honeytoken: refused always, every use an alarm


def ends_at(expires_at: datetime | None, revoked_at: datetime | None) -> datetime | None:
    """When a credential stops working by itself: expiry or revocation, whichever is first."""
    if expires_at is None:
        return revoked_at
    if revoked_at is None:
        return expires_at
    return min(expires_at, revoked_at)


@dataclass(frozen=True, slots=True)
class KeyTerm:
    """A key's expiry and revocation (both aware datetimes), and whether its owner is a member."""

    expires_at: datetime | None
    # In the future: the end of a rotation's grace period.
    revoked_at: datetime | None
    owner_is_member: bool = True
    is_canary: bool = False

    @property
    def ends_at(self) -> datetime | None:
        """When the key stops working by itself; None: never."""
        return ends_at(self.expires_at, self.revoked_at)

    @property
    def ends(self) -> float:
        """``ends_at`` in seconds since the epoch, for the steady path to compare.

        ``inf``: never; ``-inf``: already, its owner having left the organization
        or the key being a canary. The key is refused at ``now`` exactly when
        ``ends <= now.timestamp()``.
        """
        if not self.owner_is_member or self.is_canary:
            return -math.inf
        end = self.ends_at
        return end.timestamp() if end is not None else math.inf

    def refusal(self, now: datetime) -> str | None:
        """Why the key is refused at ``now`` (for the audit log), or None if it works.

        ``revoked`` before ``expired`` when both have passed; ``canary``, then
        ``owner_removed``, only for a key that has not ended by itself.
        """
        ended = self._ended(now)
        if ended is None and self.is_canary:
            return CANARY
        if ended is None and not self.owner_is_member:
            return OWNER_REMOVED
        return ended

    def status(self, now: datetime) -> str:
        """The key's status at ``now``: why it is refused, else ``active`` or ``expiring``.

        ``revoked``, ``expired``, ``canary`` or ``owner_removed`` (its owner is
        not a member of its organization) exactly when the key is refused; a key that
        works is ``expiring`` while a rotation's grace runs, else ``active``.
        """
        refusal = self.refusal(now)
        if refusal is not None:
            return refusal
        return EXPIRING if self.revoked_at is not None else ACTIVE

    def _ended(self, now: datetime) -> str | None:
        if self.revoked_at is not None and self.revoked_at <= now:
            return REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return EXPIRED
        return None
