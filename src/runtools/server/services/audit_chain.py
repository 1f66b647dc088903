"""The audit chain checked and exported: ``runtools admin audit verify`` and ``… export``.

``verify`` walks every event in chain order and recomputes its hash
(``domain/audit_chain.py``): the first event whose stored fields do not
give its stored hash, that does not follow the one before it, that is
missing from the sequence or stored outside the chain, or a chain that ends
before its head, is named.

``export`` writes the chain as JSON lines, signed with Ed25519: a header
(format, time, the public key), one line per event (exactly the fields its
hash is taken over, and the hash), and a last line with the signature over
the SHA-256 of every byte before it. The signing key is derived from a secret of the
service kept in its database (``service_secrets``), so every node and every
export of one deployment signs with the same key; its public half is in the
header, printed by the command, and what an offline verifier is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtools.server.domain.audit_chain import (
    EXPORT_FORMAT,
    GENESIS,
    ChainBreak,
    event_hash,
    fields_of,
    timestamp,
)
from runtools.server.domain.clock import Clock
from runtools.server.store.database import Database
from runtools.server.store.models import AuditEvent
from runtools.server.store.repositories import audit
from runtools.server.store.repositories.service_secrets import service_secret

#: Events read per query while walking the chain.
PAGE = 1000
#: Names the service secret the export signing key is derived from.
EXPORT_KEY_SOURCE = "audit-export"


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found: how far it holds, and the first break if any."""

    events: int
    head_seq: int
    head_hash: str
    broken: ChainBreak | None


@dataclass(frozen=True)
class ExportSummary:
    events: int
    head_seq: int
    head_hash: str
    public_key: str


def _line(document: dict[str, object]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditChainService:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    # -- the signing key -------------------------------------------------------

    def _signing_key(self) -> Ed25519PrivateKey:
        secret = service_secret(self._database, self._clock, EXPORT_KEY_SOURCE)
        seed = hashlib.sha256(b"runtools audit export signing key\0" + secret).digest()
        return Ed25519PrivateKey.from_private_bytes(seed)

    def public_key(self) -> str:
        """The export signing key's public half: 32 raw bytes, base64."""
        raw = (
            self._signing_key()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return base64.b64encode(raw).decode()

    # -- walking the chain -----------------------------------------------------

    def _walk(self, visit: Callable[[AuditEvent, dict[str, object]], None]) -> ChainReport:
        """Check every event up to the head (read first), calling ``visit`` on each good one."""
        with self._database.session() as session:
            head = audit.chain_head(session)
            if head is None:
                return ChainReport(0, 0, GENESIS, ChainBreak(None, None, "its head is missing"))
            stray = audit.first_unchained(session)
            if stray is not None:
                return ChainReport(
                    0,
                    head.seq,
                    head.hash,
                    ChainBreak(stray.id, None, "stored outside the chain (it has no seq)"),
                )
            seq, previous, count = 0, GENESIS, 0
            while seq < head.seq:
                page = audit.chained_after(session, seq, through=head.seq, limit=PAGE)
                if not page:
                    break
                for row in page:
                    assert row.seq is not None
                    broken = _check(row, seq, previous)
                    if broken is not None:
                        return ChainReport(count, head.seq, head.hash, broken)
                    fields = fields_of(row, seq=row.seq, prev_hash=previous)
                    visit(row, {**fields, "hash": row.hash})
                    seq, previous, count = row.seq, str(row.hash), count + 1
                session.expunge_all()
            if seq != head.seq:
                problem = f"the chain ends at seq {seq} but its head is at seq {head.seq}"
                return ChainReport(
                    count,
                    head.seq,
                    head.hash,
                    ChainBreak(None, None, problem + ": the newest events were removed"),
                )
            if previous != head.hash:
                return ChainReport(
                    count,
                    head.seq,
                    head.hash,
                    ChainBreak(None, None, "the newest event's hash is not the head's"),
                )
            return ChainReport(count, head.seq, head.hash, None)

    def verify(self) -> ChainReport:
        return self._walk(lambda _row, _fields: None)

    def export(self, out: IO[bytes]) -> tuple[ExportSummary, ChainBreak | None]:
        """Write the signed export to ``out``: every event that verifies, up to a break if
        there is one (then reported: nothing past it is vouched for)."""
        key = self._signing_key()
        public = self.public_key()
        body = hashlib.sha256()

        def emit(document: dict[str, object]) -> None:
            line = _line(document) + b"\n"
            out.write(line)
            body.update(line)

        emit(
            {
                "format": EXPORT_FORMAT,
                "exportedAt": timestamp(self._clock.now()),
                "publicKey": public,
                "startsAfter": GENESIS,
            }
        )
        report = self._walk(lambda _row, fields: emit(fields))
        # Signed: the SHA-256 of every byte before the signature's line (streamed, any size).
        signature = key.sign(body.digest())
        out.write(_line({"signature": base64.b64encode(signature).decode()}) + b"\n")
        return (
            ExportSummary(report.events, report.head_seq, report.head_hash, public),
            report.broken,
        )


def _check(row: AuditEvent, seq: int, previous: str) -> ChainBreak | None:
    assert row.seq is not None
    if row.seq != seq + 1:
        return ChainBreak(
            row.id, row.seq, f"follows seq {seq}: the events between them were removed"
        )
    if row.prev_hash != previous:
        return ChainBreak(row.id, row.seq, "its prevHash is not the previous event's hash")
    if event_hash(fields_of(row, seq=row.seq, prev_hash=previous)) != row.hash:
        return ChainBreak(row.id, row.seq, "its stored fields do not match its hash (altered)")
    return None
