"""Persistence: SQLAlchemy models, repositories and Alembic migrations.

Nothing here knows about HTTP. Services open a unit of work
(``Database.session()``), call repositories, and commit.
"""
