"""The audit log as a hash chain: each event carries the hash of the one before it.

An event's hash is SHA-256 over its canonical serialisation: a JSON object
of its fields (camelCase, as the API names them, plus ``seq``, its place in
the chain, and ``prevHash``, the previous event's hash) with sorted keys,
no whitespace and UTF-8 text. The first event follows ``GENESIS``. Changing
any stored field of an event changes its hash; removing or inserting one
breaks the next event's ``prevHash`` or the sequence; removing the newest
ones disagrees with the chain's head, which the store keeps beside it.

The same serialisation is what ``runtools admin audit export`` writes, one
event per line with its ``hash``, so an offline verifier recomputes it with
``json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
(see docs/security.md). Nothing here reads the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS",
    "ChainBreak",
    "canonical",
    "event_hash",
    "fields_of",
    "normalized_details",
    "timestamp",
]

#: ``prevHash`` of the first event.
GENESIS = "0" * 64
#: The first line of an export names its format.
EXPORT_FORMAT = "runtools-audit-export/1"


def timestamp(value: datetime) -> str:
    """An event's time as it is hashed: UTC, microseconds, ``Z``."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalized_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """``details`` as JSON gives it back (string keys, lists for tuples): stored and hashed so."""
    normalized: dict[str, Any] = json.loads(json.dumps(dict(details or {})))
    return normalized


#: What of an event is hashed, as (name in the chain, attribute of a stored row).
STORED_FIELDS = (
    ("id", "id"),
    ("orgId", "org_id"),
    ("action", "action"),
    ("outcome", "outcome"),
    ("reason", "reason"),
    ("actorType", "actor_type"),
    ("actorId", "actor_id"),
    ("targetType", "target_type"),
    ("targetId", "target_id"),
    ("ip", "ip"),
    ("userAgent", "user_agent"),
    ("requestId", "request_id"),
    ("details", "details"),
)


def fields_of(row: Any, *, seq: int, prev_hash: str) -> dict[str, Any]:
    """The chained fields of a stored event (any object with the table's attribute names)."""
    fields: dict[str, Any] = {name: getattr(row, attribute) for name, attribute in STORED_FIELDS}
    fields["createdAt"] = timestamp(row.created_at)
    fields["seq"] = seq
    fields["prevHash"] = prev_hash
    return fields


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash is taken over (``fields`` without its own ``hash``)."""
    return json.dumps(
        {name: value for name, value in fields.items() if name != "hash"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain stops holding: the first event that does not verify, and why."""

    event_id: str | None
    seq: int | None
    problem: str

    def describe(self) -> str:
        where = f"event {self.event_id} (seq {self.seq})" if self.event_id else "the chain"
        return f"{where}: {self.problem}"
