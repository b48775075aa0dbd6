"""Migrations go up, down and up again on both backends, and match the models exactly."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

import app.models  # noqa: F401
from app import db as app_db
from app.db import Base, make_engine
from tests.conftest import create_pg_database, drop_pg_database, pg_reachable, unavailable


@pytest.fixture
def empty_url(backend, tmp_path):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    problem = pg_reachable()
    if problem:
        unavailable(problem)
    url = create_pg_database("cact_migrate")
    yield url
    drop_pg_database(url)


def table_names(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_url):
    expected = set(Base.metadata.tables)
    app_db.upgrade(empty_url)
    assert table_names(empty_url) == expected
    app_db.downgrade(empty_url, "base")
    assert table_names(empty_url) == set()
    app_db.upgrade(empty_url)
    assert table_names(empty_url) == expected
    engine = make_engine(empty_url)
    try:
        current, have, head = app_db.schema_is_current(engine)
        assert current and have == head
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(empty_url):
    app_db.upgrade(empty_url)
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models differ from migrations; add a revision: {diff}"


def trigger_names(engine):
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        return {r[0] for r in rows}


def test_history_tables_refuse_update_and_delete(empty_url):
    app_db.upgrade(empty_url)
    engine = create_engine(empty_url)
    try:
        names = trigger_names(engine)
        for table in ("audit_events", "answer_events"):
            assert any(n.startswith(table) for n in names), (table, names)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO audit_events (id, at, actor, action, target, reason, data, "
                "prev_hash, hash) VALUES (1, CURRENT_TIMESTAMP, 'a', 'b', '', '', '{}', 'p', 'h')"
            ))
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_events")).scalar() == "a"
        app_db.downgrade(empty_url, "base")
        assert not trigger_names(engine)
    finally:
        engine.dispose()


def test_migration_files_are_date_prefixed():
    names = [p.name for p in (app_db.MIGRATIONS_DIR / "versions").glob("*.py")]
    assert names
    for name in names:
        assert name[:8].isdigit() and name[8] == "_", name
