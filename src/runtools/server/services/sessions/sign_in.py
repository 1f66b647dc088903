"""Signing in: a password (or a sign-in approved elsewhere) in, a new session out.

Login answers "no such email" and "wrong password" alike, in the same time
(``services.passwords`` checks an unknown email against a dummy hash), and
audits the true reason. Guesses are counted per account and per address
before the password is checked, so guesses in flight count too
(``services.throttle``). Sign-up, when the server allows it, makes a user,
an organization with the user as admin, and a first session. Sign-up
through an invitation is allowed whether or not sign-up is open: the user
joins the inviting organization with the invited role instead (their email
must be the invited one; ``services.invitations`` judges the token).

Refreshing and ending sessions are not here (``refresh``, ``management``),
nor is making the tokens (``issuing``).
"""

from __future__ import annotations

from functools import partial

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Forbidden, InvalidRequest, SignInFailed, Unauthorized
from runtools.server.services.invitations import InvitationRefused, InvitationService
from runtools.server.services.passwords import dummy_hash, hash_password, password_matches
from runtools.server.services.sessions.issuing import SessionIssuer, TokenPair, choose_org
from runtools.server.services.throttle import Throttle
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.repositories import audit, organizations
from runtools.server.store.repositories.service_secrets import service_secret


class SignIn:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        issuer: SessionIssuer,
        settings: Settings,
        invitations: InvitationService,
    ) -> None:
        self._database = database
        self._clock = clock
        self._issuer = issuer
        self._settings = settings
        self._invitations = invitations
        dummy_hash()  # made now, not on the first unknown email
        # Throttled subjects are HMACs under a key of the service's own.
        throttle = partial(
            Throttle,
            database=database,
            clock=clock,
            key=service_secret(database, clock, "throttle_subjects"),
            window=settings.login_failure_window_seconds,
        )
        self.account_throttle = throttle(
            name="sign-in:account", limit=settings.login_max_failures_per_account
        )
        self.ip_throttle = throttle(name="sign-in:ip", limit=settings.login_max_failures_per_ip)

    def login(
        self, email: str, password: str, org_name: str | None, client: str, context: RequestContext
    ) -> TokenPair:
        account = email.strip().lower()
        throttled = "Too many failed sign-ins"
        # Counted before the password is checked, so guesses in flight count too.
        self.account_throttle.admit(f"account:{account}", throttled)
        guess = self.ip_throttle.admit(f"ip:{context.ip}", throttled) if context.ip else None
        # No connection is held while Argon2 runs: a burst of sign-ins must not
        # take the pool every other request needs.
        with self._database.session() as session:
            user = organizations.user_with_email(session, account)
            user_id = user.id if user is not None else None
            stored = (user.password_hash or None) if user is not None else None
        if not password_matches(stored, password):
            self._sign_in_failed(user_id, context)
            raise SignInFailed()
        self.account_throttle.reset(f"account:{account}")
        if guess is not None:
            self.ip_throttle.succeeded(guess)
        assert user_id is not None  # a password matched: the user exists
        with self._database.session() as session:
            user = organizations.user(session, user_id)
            org, role = choose_org(session, user, org_name)
            pair = self._issuer.start(
                session, user, org, role, client, context, audited_as="session.created"
            )
            session.commit()
        return pair

    def signup(
        self,
        email: str,
        password: str,
        org_name: str | None,
        display_name: str | None,
        client: str,
        context: RequestContext,
        invitation: str | None = None,
    ) -> TokenPair:
        if invitation is not None:
            if org_name is not None:
                raise InvalidRequest(
                    "Send org or invitation, not both: an invitation names its org"
                )
            return self._sign_up_invited(email, password, invitation, display_name, client, context)
        if org_name is None:
            raise InvalidRequest("org is required: the organization to create")
        if self._settings.signup != "open":
            raise Forbidden("Sign-up is closed on this server; ask an operator for an account")
        password_hash = hash_password(password)
        with self._database.session() as session:
            user = organizations.create_user(
                session,
                self._clock,
                email,
                display_name=display_name,
                password_hash=password_hash,
            )
            org = organizations.create_org(session, self._clock, org_name)
            organizations.add_member(session, self._clock, org, user, "admin")
            pair = self._issuer.start(
                session, user, org, "admin", client, context, audited_as="user.signed_up"
            )
            session.commit()
        return pair

    def _sign_up_invited(
        self,
        email: str,
        password: str,
        invitation: str,
        display_name: str | None,
        client: str,
        context: RequestContext,
    ) -> TokenPair:
        guess = self._invitations.admit_sign_up_guess(context)
        password_hash = hash_password(password)
        try:
            with self._database.session() as session:
                user = organizations.create_user(
                    session,
                    self._clock,
                    email,
                    display_name=display_name,
                    password_hash=password_hash,
                )
                joined = self._invitations.join(session, invitation, user, None, context)
                pair = self._issuer.start(
                    session,
                    user,
                    joined.org,
                    joined.role,
                    client,
                    context,
                    audited_as="user.signed_up",
                )
                session.commit()
        except InvitationRefused as refused:
            self._invitations.refused(refused, None, context)
            raise
        self._invitations.sign_up_guess_succeeded(guess)
        return pair

    def start_for(
        self, user_id: str, org_id: str, client: str, context: RequestContext
    ) -> TokenPair:
        """A session for a sign-in approved elsewhere (the device grant)."""
        with self._database.session() as session:
            user = organizations.user(session, user_id)
            org = organizations.organization(session, org_id)
            role = organizations.role_in(session, org_id, user_id)
            if role is None:
                raise Unauthorized()
            pair = self._issuer.start(
                session, user, org, role, client, context, audited_as="session.created"
            )
            session.commit()
        return pair

    def confirm_password(self, user_id: str, password: str, context: RequestContext) -> None:
        """The signed-in person's password again (re-authentication), counted as a sign-in is."""
        with self._database.session() as session:
            user = organizations.user(session, user_id)
            account = user.email.strip().lower()
            stored = user.password_hash or None
        guess = self.account_throttle.admit(f"account:{account}", "Too many failed sign-ins")
        if not password_matches(stored, password):
            self._sign_in_failed(user_id, context)
            raise Forbidden("That password is not correct")
        self.account_throttle.succeeded(guess)

    def _sign_in_failed(self, user_id: str | None, context: RequestContext) -> None:
        with self._database.session() as session:
            org_id = organizations.some_org_of(session, user_id) if user_id is not None else None
            audit.record(
                session,
                AuditRecord(
                    action="auth.sign_in_failed",
                    outcome="failure",
                    reason="wrong_password" if user_id else "unknown_email",
                    org_id=org_id,
                    actor_type="user",
                    actor_id=user_id,
                    context=context,
                ),
                self._clock.now(),
            )
            session.commit()
