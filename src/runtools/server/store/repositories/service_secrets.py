"""Secrets of the service itself, made on first use and shared by every node."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from runtools.server.domain.clock import Clock
from runtools.server.store.database import Database
from runtools.server.store.models import ServiceSecret


def service_secret(database: Database, clock: Clock, name: str) -> bytes:
    """The secret called ``name``, created (256 random bits) if it does not exist yet.

    Two nodes starting together may both try to create it; the loser reads
    the winner's, so every node ends up with the same value.
    """
    with database.session() as session:
        row = session.get(ServiceSecret, name)
        if row is None:
            row = ServiceSecret(name=name, value=secrets.token_urlsafe(32), created_at=clock.now())
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                row = session.get_one(ServiceSecret, name)
        return row.value.encode()
