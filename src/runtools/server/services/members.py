"""An organization's members: who they are, their roles, and how they leave.

Rules enforced here, whatever the transport:
- only the organization the credential acts for (any other id, or a user
  who is not a member of it, is "not found");
- the last admin can neither be demoted, nor removed, nor leave: the
  organization always has someone to run it (409, saying what to do);
- nobody promotes themselves;
- a removal (or leaving) revokes the person's sessions in the organization,
  and their keys there stop working (status ``owner_removed``); a
  demotion caps their credentials at the member role. Both take effect on
  the next request on every node: the change commits first, then an event
  drops their cached verifications everywhere. Their sandboxes stay, for
  an admin to reassign or destroy;
- every change is audited with actor, target and old -> new role.

Membership changes of one organization are serialised (``organizations.lock``),
so two admins demoting each other at once cannot leave it with none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.principal import Principal
from runtools.server.domain.roles import Role
from runtools.server.domain.wire import sent_shape
from runtools.server.services.organizations import own_org
from runtools.server.services.sessions import ending
from runtools.server.store.database import Database
from runtools.server.store.models import Membership, User
from runtools.server.store.pagination import Page
from runtools.server.store.repositories import audit, organizations, sessions

if TYPE_CHECKING:
    from runtools.server.store.database import Session


@sent_shape
class MemberOut(sdk.Member):
    # A member as the organization's members see them: the SDK's ``Member``,
    # every field required.
    ...


def member_view(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=membership.role,
        joined_at=as_utc(membership.created_at),
    )


def valid_role(role: str) -> str:
    if role not in {r.value for r in Role}:
        raise InvalidRequest(f"Unknown role {role!r}: use admin or member")
    return role


class MemberService:
    def __init__(self, database: Database, clock: Clock, bus: EventBus) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus

    def list_members(
        self, caller: Principal, org_id: str, *, limit: int, cursor: str | None
    ) -> Page[MemberOut]:
        own_org(caller, org_id)
        with self._database.session() as session:
            page = organizations.members_page(session, org_id, limit=limit, cursor=cursor)
            users = organizations.users_by_id(session, {m.user_id for m in page.items})
            views = [member_view(m, users[m.user_id]) for m in page.items]
        return Page(views, page.next_cursor)

    def change_role(
        self, caller: Principal, org_id: str, user_id: str, role: str, context: RequestContext
    ) -> MemberOut:
        own_org(caller, org_id)
        role = valid_role(role)
        with self._database.session() as session:
            organizations.lock(session, org_id)
            membership, user = self._member(session, org_id, user_id)
            old = membership.role
            if old == role:
                return member_view(membership, user)
            if user_id == caller.user_id and role == Role.ADMIN:
                raise Forbidden("Nobody promotes themselves: ask another admin")
            if old == Role.ADMIN and organizations.count_admins(session, org_id) <= 1:
                raise Conflict(
                    "The last admin cannot be demoted: make another member an admin first"
                )
            membership.role = role
            self._audit(session, caller, "member.role_changed", user_id, old, role, context)
            view = member_view(membership, user)
            session.commit()
        self._announce(org_id, user_id)
        return view

    def remove(
        self, caller: Principal, org_id: str, user_id: str, context: RequestContext
    ) -> MemberOut:
        own_org(caller, org_id)
        return self._end_membership(caller, org_id, user_id, "member.removed", context)

    def leave(self, caller: Principal, org_id: str, context: RequestContext) -> MemberOut:
        own_org(caller, org_id)
        return self._end_membership(caller, org_id, caller.user_id, "member.left", context)

    # -- helpers ---------------------------------------------------------------

    def _end_membership(
        self, caller: Principal, org_id: str, user_id: str, action: str, context: RequestContext
    ) -> MemberOut:
        with self._database.session() as session:
            organizations.lock(session, org_id)
            membership, user = self._member(session, org_id, user_id)
            if membership.role == Role.ADMIN and organizations.count_admins(session, org_id) <= 1:
                verb = "leave" if action == "member.left" else "be removed"
                raise Conflict(f"The last admin cannot {verb}: make another member an admin first")
            view = member_view(membership, user)
            ended = sessions.unrevoked_in_org(session, user_id, org_id)
            reason = "member_left" if action == "member.left" else "member_removed"
            for row in ended:
                ending.revoke(session, self._clock, row, reason, caller, context)
            organizations.remove_membership(session, membership)
            self._audit(session, caller, action, user_id, membership.role, None, context)
            session.commit()
        self._announce(org_id, user_id)
        for row in ended:
            ending.announce(self._bus, row)
        return view

    def _member(self, session: Session, org_id: str, user_id: str) -> tuple[Membership, User]:
        membership = organizations.membership(session, org_id, user_id)
        if membership is None:
            raise NotFound(f"No member {user_id!r} in this organization")
        return membership, organizations.user(session, user_id)

    def _announce(self, org_id: str, user_id: str) -> None:
        """Every node drops the person's cached credentials of this organization."""
        self._bus.publish(CredentialEvent(EventKind.MEMBER_CHANGED, org_id, user_id=user_id))

    def _audit(
        self,
        session: Session,
        caller: Principal,
        action: str,
        target_user_id: str,
        old_role: str | None,
        new_role: str | None,
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
                target_type="user",
                target_id=target_user_id,
                details={
                    "actorUserId": caller.user_id,
                    "targetUserId": target_user_id,
                    "oldRole": old_role,
                    "newRole": new_role,
                },
            ),
            self._clock.now(),
        )
