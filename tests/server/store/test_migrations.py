"""The migrations: one line of history, and what each one does to data already there."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from runtools.server.settings import Settings
from runtools.server.store import migrate
from runtools.server.store.database import Database

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    return config


def _to(database: Database, revision: str) -> None:
    config = _config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_history_has_one_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several alembic heads: {heads}; point one at the other"


def test_existing_organizations_get_a_default_project_and_stray_project_ids_move_to_it(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    database = Database(settings)
    try:
        _to(database, "0008")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO organizations (id, name, plan, created_at) VALUES "
                    "('org_a', 'acme', 'free', :now), ('org_b', 'globex', 'free', :now)"
                ),
                {"now": NOW},
            )
            connection.execute(
                text("INSERT INTO users (id, email, created_at) VALUES ('user_a', 'a@x.io', :now)"),
                {"now": NOW},
            )
            for key_id, project_id in (
                ("key_1", "11111111-1111-4111-8111-111111111111"),
                ("key_2", None),
            ):
                connection.execute(
                    text(
                        "INSERT INTO api_keys (id, org_id, owner_user_id, name, key_hash,"
                        " key_prefix, scopes, project_id, is_test, created_at) VALUES"
                        " (:id, 'org_a', 'user_a', 'k', :id, 'rt_live_xxxx', '[\"*\"]',"
                        " :project, false, :now)"
                    ),
                    {"id": key_id, "project": project_id, "now": NOW},
                )
        _to(database, "head")
        with database.engine.connect() as connection:
            query = text("SELECT org_id, id FROM projects WHERE is_default AND name = 'Default'")
            defaults: dict[str, str] = {row[0]: row[1] for row in connection.execute(query)}
            keys: dict[str, str | None] = {
                row[0]: row[1]
                for row in connection.execute(text("SELECT id, project_id FROM api_keys"))
            }
        assert set(defaults) == {"org_a", "org_b"}
        assert keys == {"key_1": defaults["org_a"], "key_2": None}
    finally:
        database.engine.dispose()


def test_the_migrated_schema_is_the_models_schema(tmp_path: Path, database_url: str | None) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from runtools.server.store.models import Base

    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    database = Database(settings)
    try:
        _to(database, "head")
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        database.engine.dispose()
