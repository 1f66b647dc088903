"""Operator actions on the configured database: bootstrapping without a credential.

These back ``runtools admin …``. They are how the first organization, user
and key come to exist, so they act with the database's authority.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtools.server.domain.audit_chain import ChainBreak
from runtools.server.domain.errors import Conflict, InvalidRequest, NotFound
from runtools.server.runtime import Runtime
from runtools.server.services.api_keys import IssuedKey
from runtools.server.services.audit_chain import ChainReport, ExportSummary
from runtools.server.services.passwords import hash_password
from runtools.server.store.models import Organization, User
from runtools.server.store.repositories import organizations


@dataclass(frozen=True)
class UserMembership:
    user: User
    org: Organization
    role: str
    created: bool


def create_org(runtime: Runtime, name: str) -> Organization:
    with runtime.database.session() as session:
        org = organizations.create_org(session, runtime.clock, name)
        session.commit()
        return org


def create_user(
    runtime: Runtime,
    email: str,
    *,
    org_name: str,
    role: str,
    password: str | None,
    display_name: str | None,
) -> UserMembership:
    """Create the user, or add an existing one to another organization."""
    password_hash = hash_password(password) if password is not None else None
    with runtime.database.session() as session:
        org = organizations.org_by_name(session, org_name)
        try:
            user = organizations.user_by_email(session, email)
            created = False
        except NotFound:
            user = organizations.create_user(
                session,
                runtime.clock,
                email,
                display_name=display_name,
                password_hash=password_hash,
            )
            created = True
        else:
            if password_hash is not None:
                raise Conflict(
                    f"A user with email {user.email!r} already exists; "
                    "their password is theirs to change"
                )
        organizations.add_member(session, runtime.clock, org, user, role)
        session.commit()
        return UserMembership(user, org, role, created)


def set_first_password(runtime: Runtime, email: str, password: str) -> User:
    """Give a sign-in password to a user who has none (one created without).

    A user who has a password changes it themselves (``POST /v1/auth/password``):
    the operator never replaces one.
    """
    password_hash = hash_password(password)
    with runtime.database.session() as session:
        user = organizations.user_by_email(session, email)
        if user.password_hash is not None:
            raise Conflict(
                f"{user.email} already has a password; they change it themselves "
                "(POST /v1/auth/password)"
            )
        user.password_hash = password_hash
        session.commit()
        return user


def create_key(
    runtime: Runtime,
    *,
    org_name: str,
    email: str,
    name: str,
    scopes: list[str],
    expires_in: str | None,
    is_test: bool,
) -> tuple[IssuedKey, Organization, User]:
    with runtime.database.session() as session:
        org = organizations.org_by_name(session, org_name)
        user = organizations.user_by_email(session, email)
        role = organizations.role_in(session, org.id, user.id)
        if role is None:
            raise NotFound(f"{user.email} is not a member of {org.name}")
    issued = runtime.api_keys.issue_for_operator(
        org, user, role, name=name, scopes=scopes, expires_in=expires_in, is_test=is_test
    )
    return issued, org, user


def set_plan(runtime: Runtime, org_name: str, plan: str) -> Organization:
    """Change an organization's plan (its default rate limits); caches drop its credentials."""
    from runtools.server.domain.events import CredentialEvent, EventKind
    from runtools.server.ratelimit.policy import PLANS

    if plan not in PLANS:
        raise InvalidRequest(f"unknown plan {plan!r}: use one of {', '.join(PLANS)}")
    with runtime.database.session() as session:
        org = organizations.org_by_name(session, org_name)
        org.plan = plan
        session.commit()
    runtime.bus.publish(CredentialEvent(EventKind.ORG_CHANGED, org.id))
    return org


def verify_audit_chain(runtime: Runtime) -> ChainReport:
    """Walk the audit log's hash chain; the report names the first event that breaks it."""
    runtime.flush()  # whatever this process queued is part of the chain first
    return runtime.audit_chain.verify()


def export_audit_chain(runtime: Runtime, out: Path) -> tuple[ExportSummary, ChainBreak | None]:
    """Write the signed export of the audit chain to ``out`` (created 0600, replaced if there)."""
    runtime.flush()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        return runtime.audit_chain.export(stream)
