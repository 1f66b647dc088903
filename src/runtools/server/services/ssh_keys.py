"""SSH keys: users' public keys, which let them into sandboxes over SSH.

Rules enforced here, whatever the transport:
- a key is registered by a user with one organization; a member sees and
  removes their own keys, an admin every key of the organization; anybody
  else's key (another member's for a member, any of another organization)
  is "not found";
- only public keys of the accepted types and sizes are taken
  (``domain/ssh_keys``); a private key is refused with a message saying so,
  and nothing of it is stored, audited or logged;
- one key is registered at most once per organization (409);
- registering and removing are audited, with the fingerprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Forbidden, InvalidRequest, NotFound, QuotaExceeded
from runtools.server.domain.paging import Page
from runtools.server.domain.principal import Principal
from runtools.server.domain.ssh_keys import BadPublicKey, parse_public_key
from runtools.server.domain.wire import sent_shape
from runtools.server.store.database import Database
from runtools.server.store.models import SshKey
from runtools.server.store.repositories import audit, ssh_keys

if TYPE_CHECKING:
    from runtools.server.store.database import Session

#: Keys one user may register with one organization.
MAX_KEYS_PER_USER = 50


@sent_shape
class SshKeyOut(sdk.SshKey):
    # An SSH key as its owner and the organization's admins see it: the SDK's
    # ``SshKey``, every field required.
    ...


def ssh_key_view(row: SshKey) -> SshKeyOut:
    return SshKeyOut(
        id=row.id,
        name=row.name,
        fingerprint=row.fingerprint,
        key_type=row.key_type,
        comment=row.comment,
        created_at=as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
        owner_user_id=row.owner_user_id,
    )


class SshKeyService:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def add(
        self, caller: Principal, *, name: str, public_key: str, context: RequestContext
    ) -> SshKeyOut:
        try:
            key = parse_public_key(public_key)
        except BadPublicKey as exc:
            # The message never quotes what was pasted; the exception chain is dropped
            # so no traceback of it can carry the text either.
            raise InvalidRequest(str(exc)) from None
        with self._database.session() as session:
            if ssh_keys.count_of_owner(session, caller.org_id, caller.user_id) >= (
                MAX_KEYS_PER_USER
            ):
                raise QuotaExceeded(
                    f"A user may register at most {MAX_KEYS_PER_USER} SSH keys per organization"
                )
            row = ssh_keys.create(
                session,
                org_id=caller.org_id,
                owner_user_id=caller.user_id,
                name=name,
                key=key,
                now=self._clock.now(),
            )
            self._audit(session, caller, "ssh_key.created", row, context)
            view = ssh_key_view(row)
            session.commit()
        return view

    def list_keys(
        self, caller: Principal, *, all_keys: bool, limit: int, cursor: str | None
    ) -> Page[SshKeyOut]:
        if all_keys and not caller.is_admin:
            raise Forbidden("Listing every SSH key of the organization requires role admin")
        with self._database.session() as session:
            page = ssh_keys.list_page(
                session,
                caller.org_id,
                owner_user_id=None if all_keys else caller.user_id,
                limit=limit,
                cursor=cursor,
            )
            return Page([ssh_key_view(row) for row in page.items], page.next_cursor)

    def get(self, caller: Principal, key_id: str) -> SshKeyOut:
        with self._database.session() as session:
            return ssh_key_view(self._visible(session, caller, key_id))

    def remove(self, caller: Principal, key_id: str, context: RequestContext) -> SshKeyOut:
        with self._database.session() as session:
            row = self._visible(session, caller, key_id)
            view = ssh_key_view(row)
            self._audit(session, caller, "ssh_key.deleted", row, context)
            ssh_keys.delete(session, row)
            session.commit()
        return view

    def _visible(self, session: Session, caller: Principal, key_id: str) -> SshKey:
        row = ssh_keys.find(session, caller.org_id, key_id)
        if row is None or (not caller.is_admin and row.owner_user_id != caller.user_id):
            raise NotFound(f"No SSH key {key_id!r}")
        return row

    def _audit(
        self,
        session: Session,
        caller: Principal,
        action: str,
        row: SshKey,
        context: RequestContext,
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=caller.org_id,
                actor_type=caller.credential_type,
                actor_id=caller.credential_id,
                context=context,
                target_type="ssh_key",
                target_id=row.id,
                details={
                    "actorUserId": caller.user_id,
                    "ownerUserId": row.owner_user_id,
                    "name": row.name,
                    "fingerprint": row.fingerprint,
                    "keyType": row.key_type,
                },
            ),
            self._clock.now(),
        )
