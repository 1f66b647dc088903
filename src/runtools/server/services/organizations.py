"""Organizations as their members see them: list mine, create one, read and rename it.

Rules enforced here, whatever the transport:
- a credential acts for one organization: ``{id}`` routes answer for that
  one only, and any other id is "not found" (existence never leaks);
- whoever creates an organization is its first admin;
- a rename takes effect on every node's next request (cached principals
  carry the name, so their caches drop the organization's entries);
- its key policy (``domain/key_policy.py``) is read by any member and set
  by its admins; it binds the keys made and rotated from then on.

Members, roles and invitations are not here (``members``, ``invitations``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import NotFound
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.key_policy import checked_lifetime
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import Role
from runtools.server.domain.wire import sent_shape
from runtools.server.store.database import Database
from runtools.server.store.models import Membership, Organization
from runtools.server.store.repositories import audit, organizations

if TYPE_CHECKING:
    from runtools.server.store.database import Session


@sent_shape
class OrgMembershipOut(sdk.OrgMembership):
    # An organization of the caller's, with the caller's role: the SDK's
    # ``OrgMembership``, every field required.
    ...


@sent_shape
class OrgPolicyOut(sdk.OrgPolicy):
    # What the organization requires of its keys: the SDK's ``OrgPolicy``.

    @classmethod
    def of(cls, org: Organization) -> OrgPolicyOut:
        return cls(
            org_id=org.id,
            max_key_lifetime=org.max_key_lifetime,
            require_key_expiry=org.require_key_expiry,
            revoke_unused_after_days=org.revoke_unused_after_days,
        )


class Unchanged:
    """A policy field a PATCH did not mention."""


UNCHANGED = Unchanged()


def membership_view(
    org: Organization, membership: Membership, current_org: str
) -> OrgMembershipOut:
    return OrgMembershipOut(
        id=org.id,
        name=org.name,
        role=membership.role,
        plan=org.plan,
        created_at=as_utc(org.created_at),
        joined_at=as_utc(membership.created_at),
        current=org.id == current_org,
    )


def own_org(caller: Principal, org_id: str) -> None:
    """Refuse an id other than the organization the credential acts for (as "not found")."""
    if org_id != caller.org_id:
        raise NotFound(f"No organization {org_id!r}")


class OrganizationService:
    def __init__(self, database: Database, clock: Clock, bus: EventBus) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus

    def list_mine(self, caller: Principal) -> list[OrgMembershipOut]:
        with self._database.session() as session:
            rows = organizations.memberships_of_user(session, caller.user_id)
            return [membership_view(org, m, caller.org_id) for org, m in rows]

    def get(self, caller: Principal, org_id: str) -> OrgMembershipOut:
        own_org(caller, org_id)
        with self._database.session() as session:
            org = organizations.organization(session, org_id)
            membership = organizations.membership(session, org_id, caller.user_id)
            if membership is None:  # removed since the credential was verified
                raise NotFound(f"No organization {org_id!r}")
            return membership_view(org, membership, caller.org_id)

    def create(self, caller: Principal, name: str, context: RequestContext) -> OrgMembershipOut:
        """A new organization, the caller its first admin."""
        with self._database.session() as session:
            org = organizations.create_org(session, self._clock, name)
            user = organizations.user(session, caller.user_id)
            membership = organizations.add_member(session, self._clock, org, user, Role.ADMIN)
            self._audit(
                session,
                caller,
                org.id,
                "org.created",
                context,
                {"name": org.name, "targetUserId": user.id, "oldRole": None, "newRole": "admin"},
            )
            view = membership_view(org, membership, caller.org_id)
            session.commit()
        return view

    def rename(
        self, caller: Principal, org_id: str, name: str, context: RequestContext
    ) -> OrgMembershipOut:
        own_org(caller, org_id)
        with self._database.session() as session:
            org = organizations.organization(session, org_id)
            old = org.name
            organizations.rename_org(session, org, name)
            membership = organizations.membership(session, org_id, caller.user_id)
            if membership is None:
                raise NotFound(f"No organization {org_id!r}")
            self._audit(
                session,
                caller,
                org.id,
                "org.renamed",
                context,
                {"oldName": old, "newName": org.name},
            )
            view = membership_view(org, membership, caller.org_id)
            session.commit()
        if view.name != old:
            self._bus.publish(CredentialEvent(EventKind.ORG_CHANGED, org_id))
        return view

    def policy(self, caller: Principal, org_id: str) -> OrgPolicyOut:
        own_org(caller, org_id)
        with self._database.session() as session:
            return OrgPolicyOut.of(organizations.organization(session, org_id))

    def set_policy(
        self,
        caller: Principal,
        org_id: str,
        *,
        max_key_lifetime: str | Unchanged | None = UNCHANGED,
        require_key_expiry: bool | Unchanged = UNCHANGED,
        revoke_unused_after_days: int | Unchanged | None = UNCHANGED,
        context: RequestContext,
    ) -> OrgPolicyOut:
        """Change what new and rotated keys must meet; keys that exist keep their expiry."""
        own_org(caller, org_id)
        if isinstance(max_key_lifetime, str):
            checked_lifetime(max_key_lifetime)
        with self._database.session() as session:
            org = organizations.organization(session, org_id)
            before = OrgPolicyOut.of(org)
            if not isinstance(max_key_lifetime, Unchanged):
                org.max_key_lifetime = max_key_lifetime
            if not isinstance(require_key_expiry, Unchanged):
                org.require_key_expiry = require_key_expiry
            if not isinstance(revoke_unused_after_days, Unchanged):
                org.revoke_unused_after_days = revoke_unused_after_days
            after = OrgPolicyOut.of(org)
            self._audit(
                session,
                caller,
                org.id,
                "org.policy_changed",
                context,
                {
                    "old": before.model_dump(mode="json", by_alias=True, exclude={"org_id"}),
                    "new": after.model_dump(mode="json", by_alias=True, exclude={"org_id"}),
                },
            )
            session.commit()
        return after

    def _audit(
        self,
        session: Session,
        caller: Principal,
        org_id: str,
        action: str,
        context: RequestContext,
        details: dict[str, object],
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=org_id,
                actor_type=caller.credential_type,
                actor_id=caller.credential_id,
                context=context,
                target_type="organization",
                target_id=org_id,
                details={"actorUserId": caller.user_id, **details},
            ),
            self._clock.now(),
        )
