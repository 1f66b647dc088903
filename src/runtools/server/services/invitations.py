"""Invitations: an admin invites an email address; that account accepts, once.

Rules enforced here, whatever the transport:
- only admins of the organization invite, list and revoke (the routes'
  guards), and only in the organization their credential acts for;
- a token (``rt_inv_`` + 256 random bits) is shown once, in the create
  response; the database holds its SHA-256 only, and it is never logged;
- an invitation is single use (claimed by a conditional update), ends
  after ``INVITATION_TTL`` (7 days), and can be revoked until accepted;
- it is accepted only by the account with the invited address: a signed-in
  user whose email matches, or a sign-up with that email (open sign-up or
  not). A leaked token is of no use to anyone else;
- every failure to accept looks the same ("not found"), whatever the
  reason (unknown, used, expired, revoked, another account), and is
  counted against the caller and its address (``services.throttle``): a
  guesser is slowed down and learns nothing. The true reason is audited.

No email is sent: the create response is the deliverable (docs/api.md
says how an operator plugs mail in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Conflict, NotFound
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.ids import new_id
from runtools.server.domain.principal import Principal
from runtools.server.domain.tokens import INVITATION_PREFIX, digest, new_invitation_token
from runtools.server.domain.wire import sent_shape
from runtools.server.services.members import valid_role
from runtools.server.services.organizations import OrgMembershipOut, membership_view, own_org
from runtools.server.services.throttle import Throttle
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import Invitation, Organization, User
from runtools.server.store.pagination import Page
from runtools.server.store.repositories import audit, invitations, organizations
from runtools.server.store.repositories.service_secrets import service_secret

if TYPE_CHECKING:
    from runtools.server.store.database import Session

INVITATION_TTL = timedelta(days=7)
#: The one answer to every invitation that cannot be accepted, whatever the reason.
CANNOT_ACCEPT = (
    "No such invitation, or it cannot be accepted: it may be used, expired, revoked, "
    "or meant for another account"
)
TOO_MANY = "Too many invitation tokens that could not be accepted"

PENDING = "pending"
ACCEPTED = "accepted"
EXPIRED = "expired"
REVOKED = "revoked"


@sent_shape
class InvitationOut(sdk.Invitation):
    # An invitation as its organization's admins list it: the SDK's
    # ``Invitation``, every field required; never its token.
    ...


@sent_shape
class IssuedInvitationOut(sdk.IssuedInvitation):
    # A new invitation with its token, shown this once: the SDK's ``IssuedInvitation``.
    ...


def status_of(invitation: Invitation, now: datetime) -> str:
    if invitation.accepted_at is not None:
        return ACCEPTED
    if invitation.revoked_at is not None:
        return REVOKED
    if as_utc(invitation.expires_at) <= now:
        return EXPIRED
    return PENDING


def invitation_view(invitation: Invitation, now: datetime) -> InvitationOut:
    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return InvitationOut(
        id=invitation.id,
        org_id=invitation.org_id,
        email=invitation.email,
        role=invitation.role,
        status=status_of(invitation, now),
        invited_by_user_id=invitation.invited_by_user_id,
        created_at=as_utc(invitation.created_at),
        expires_at=as_utc(invitation.expires_at),
        accepted_at=utc(invitation.accepted_at),
        revoked_at=utc(invitation.revoked_at),
    )


@dataclass(frozen=True)
class Joined:
    """What accepting an invitation made: the membership's organization and role."""

    org: Organization
    role: str


class InvitationRefused(NotFound):
    """An invitation that cannot be accepted, with the true reason (for the audit log only)."""

    def __init__(self, reason: str, invitation: Invitation | None = None) -> None:
        super().__init__(CANNOT_ACCEPT)
        self.reason = reason
        # Plain values: the row is gone with the transaction the refusal rolls back.
        self.invitation_id = invitation.id if invitation else None
        self.org_id = invitation.org_id if invitation else None


class InvitationService:
    def __init__(self, database: Database, clock: Clock, bus: EventBus, settings: Settings) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        throttle = partial(
            Throttle,
            database=database,
            clock=clock,
            key=service_secret(database, clock, "throttle_subjects"),
            window=settings.login_failure_window_seconds,
        )
        self.user_throttle = throttle(
            name="invitation:user", limit=settings.login_max_failures_per_account
        )
        self.ip_throttle = throttle(name="invitation:ip", limit=settings.login_max_failures_per_ip)

    # -- admins ------------------------------------------------------------------

    def create(
        self, caller: Principal, org_id: str, email: str, role: str, context: RequestContext
    ) -> IssuedInvitationOut:
        own_org(caller, org_id)
        role = valid_role(role)
        email = organizations.normalize_email(email)
        now = self._clock.now()
        token = new_invitation_token()
        with self._database.session() as session:
            invitee = organizations.user_with_email(session, email)
            if invitee is not None and organizations.membership(session, org_id, invitee.id):
                raise Conflict(f"{email} is already a member of this organization")
            if invitations.pending_for(session, org_id, email, now) is not None:
                raise Conflict(
                    f"{email} already has a pending invitation; revoke it to send a new one"
                )
            invitation = invitations.add(
                session,
                Invitation(
                    id=new_id("inv"),
                    org_id=org_id,
                    email=email,
                    role=role,
                    token_hash=digest(token),
                    invited_by_user_id=caller.user_id,
                    created_at=now,
                    expires_at=now + INVITATION_TTL,
                    accepted_at=None,
                    accepted_by_user_id=None,
                    revoked_at=None,
                ),
            )
            self._audit(session, caller, "invitation.created", invitation, context)
            view = invitation_view(invitation, now)
            session.commit()
        return IssuedInvitationOut(**dict(view), token=token)

    def list_invitations(
        self, caller: Principal, org_id: str, *, limit: int, cursor: str | None
    ) -> Page[InvitationOut]:
        own_org(caller, org_id)
        now = self._clock.now()
        with self._database.session() as session:
            page = invitations.page_of_org(session, org_id, limit=limit, cursor=cursor)
            return Page([invitation_view(i, now) for i in page.items], page.next_cursor)

    def revoke(
        self, caller: Principal, org_id: str, invitation_id: str, context: RequestContext
    ) -> InvitationOut:
        own_org(caller, org_id)
        now = self._clock.now()
        with self._database.session() as session:
            invitation = invitations.find(session, invitation_id)
            if invitation is None or invitation.org_id != org_id:
                raise NotFound(f"No invitation {invitation_id!r}")
            if invitation.accepted_at is not None:
                raise Conflict("This invitation was accepted; remove the member instead")
            if invitation.revoked_at is None:
                invitation.revoked_at = now
                self._audit(session, caller, "invitation.revoked", invitation, context)
            view = invitation_view(invitation, now)
            session.commit()
        return view

    # -- invitees ------------------------------------------------------------------

    def accept(self, caller: Principal, token: str, context: RequestContext) -> OrgMembershipOut:
        """A signed-in user accepts an invitation addressed to their email."""
        guesses = [
            self.user_throttle.admit(f"user:{caller.user_id}", TOO_MANY),
            *([self.ip_throttle.admit(f"ip:{context.ip}", TOO_MANY)] if context.ip else []),
        ]
        try:
            with self._database.session() as session:
                user = organizations.user(session, caller.user_id)
                joined = self.join(session, token, user, caller, context)
                membership = organizations.membership(session, joined.org.id, user.id)
                assert membership is not None
                view = membership_view(joined.org, membership, caller.org_id)
                session.commit()
        except InvitationRefused as refused:
            self.refused(refused, caller.user_id, context)
            raise
        self.user_throttle.succeeded(guesses[0])
        if len(guesses) > 1:
            self.ip_throttle.succeeded(guesses[1])
        self._bus.publish(CredentialEvent(EventKind.MEMBER_CHANGED, view.id, user_id=user.id))
        return view

    def admit_sign_up_guess(self, context: RequestContext) -> int | None:
        """Count a sign-up's invitation token against its address before it is judged."""
        return self.ip_throttle.admit(f"ip:{context.ip}", TOO_MANY) if context.ip else None

    def sign_up_guess_succeeded(self, guess: int | None) -> None:
        if guess is not None:
            self.ip_throttle.succeeded(guess)

    def join(
        self,
        session: Session,
        token: str,
        user: User,
        caller: Principal | None,
        context: RequestContext,
    ) -> Joined:
        """Accept the invitation ``token`` as ``user``, in the caller's transaction.

        ``InvitationRefused`` (a 404, one message for every reason) unless it
        is pending and addressed to ``user``'s email. ``caller`` is None for
        a sign-up (the new user is the actor).
        """
        now = self._clock.now()
        invitation = (
            invitations.by_token_hash(session, digest(token))
            if token.startswith(INVITATION_PREFIX)
            else None
        )
        if invitation is None:
            raise InvitationRefused("unknown")
        status = status_of(invitation, now)
        if status != PENDING:
            raise InvitationRefused(
                {ACCEPTED: "used", EXPIRED: "expired", REVOKED: "revoked"}[status], invitation
            )
        if invitation.email != user.email:
            raise InvitationRefused("wrong_account", invitation)
        org = organizations.organization(session, invitation.org_id)
        if organizations.membership(session, org.id, user.id) is not None:
            raise Conflict(f"You are already a member of {org.name}")
        if not invitations.claim(session, invitation.id, user.id, now):
            raise InvitationRefused("used", invitation)  # a concurrent accept won
        organizations.add_member(session, self._clock, org, user, invitation.role)
        audit.record(
            session,
            AuditRecord(
                action="invitation.accepted",
                outcome="success",
                org_id=org.id,
                actor_type=caller.credential_type if caller else "user",
                actor_id=caller.credential_id if caller else user.id,
                context=context,
                target_type="invitation",
                target_id=invitation.id,
                details={
                    "actorUserId": user.id,
                    "targetUserId": user.id,
                    "email": invitation.email,
                    "oldRole": None,
                    "newRole": invitation.role,
                    "invitedByUserId": invitation.invited_by_user_id,
                },
            ),
            now,
        )
        return Joined(org, invitation.role)

    def refused(
        self, refused: InvitationRefused, actor_user_id: str | None, context: RequestContext
    ) -> None:
        """Audit a refused acceptance with its true reason (never the token)."""
        with self._database.session() as session:
            audit.record(
                session,
                AuditRecord(
                    action="invitation.accept_failed",
                    outcome="failure",
                    reason=refused.reason,
                    org_id=refused.org_id,
                    actor_type="user",
                    actor_id=actor_user_id,
                    context=context,
                    target_type="invitation" if refused.invitation_id else None,
                    target_id=refused.invitation_id,
                ),
                self._clock.now(),
            )
            session.commit()
        refused.audited = True

    # -- helpers -------------------------------------------------------------------

    def _audit(
        self,
        session: Session,
        caller: Principal,
        action: str,
        invitation: Invitation,
        context: RequestContext,
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=invitation.org_id,
                actor_type=caller.credential_type,
                actor_id=caller.credential_id,
                context=context,
                target_type="invitation",
                target_id=invitation.id,
                details={
                    "actorUserId": caller.user_id,
                    "email": invitation.email,
                    "newRole": invitation.role,
                },
            ),
            self._clock.now(),
        )
