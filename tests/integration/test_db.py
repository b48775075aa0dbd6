"""The database layer: SQLite durability pragmas, naming convention, UTC timestamps, foreign
keys, and the rule that a request's transaction is committed before its response is sent."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from app.auth.models import Role, User
from app.db import DbSession
from app.sessions.models import RosterEntry


def test_sqlite_pragmas_make_acknowledged_writes_durable(database, backend):
    if backend != "sqlite":
        # PostgreSQL is durable by default; make sure nobody turned that off.
        with database.engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            assert conn.execute(text("SHOW fsync")).scalar() == "on"
        return
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
        assert conn.execute(text("PRAGMA cache_size")).scalar() == -2000  # SQLite's default


def test_sqlite_page_cache_follows_the_setting(tmp_path, monkeypatch):
    """CACT_SQLITE_CACHE_KIB reaches every connection the server opens (a small server's
    memory knob, docs/operations.md)."""
    from app.main import create_app
    from app.settings import Settings

    monkeypatch.setenv("CACT_SQLITE_CACHE_KIB", "256")
    settings = Settings(data_dir=tmp_path, secret_key="k" * 40)
    assert settings.sqlite_cache_kib == 256
    app = create_app(settings)
    try:
        with app.state.db.engine.connect() as one, app.state.db.engine.connect() as two:
            for conn in (one, two):
                assert conn.execute(text("PRAGMA cache_size")).scalar() == -256
    finally:
        app.state.db.engine.dispose()


def test_constraint_names_follow_the_convention(database):
    insp = inspect(database.engine)
    assert insp.get_pk_constraint("users")["name"] == "pk_users"
    fks = {fk["name"] for fk in insp.get_foreign_keys("web_sessions")}
    assert "fk_web_sessions_user_id_users" in fks
    uniques = {u["name"] for u in insp.get_unique_constraints("users")}
    assert "uq_users_username" in uniques


def test_timestamps_come_back_as_aware_utc(db):
    wib = timezone(timedelta(hours=7))
    db.add(User(username="t1", role=Role.admin, password_hash="x",
                created_at=datetime(2026, 11, 2, 8, 0, tzinfo=wib)))
    db.flush()
    db.expire_all()
    created = db.scalar(select(User.created_at).where(User.username == "t1"))
    assert created == datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    assert created.tzinfo is not None


def test_naive_datetimes_are_refused(db):
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - what the column must refuse
    db.add(User(username="t2", role=Role.admin, password_hash="x", created_at=naive))
    with pytest.raises(Exception, match="naive datetime"):
        db.flush()


def test_foreign_keys_are_enforced(db):
    db.add(RosterEntry(session_id=999, participant_id=999, token_hmac="x", token_encrypted=b"x"))
    with pytest.raises(IntegrityError):
        db.flush()


def test_failed_transaction_leaves_nothing(database, clock):
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.add(User(username="ghost", role=Role.admin, password_hash="x",
                         created_at=clock.now()))
        session.flush()
        raise RuntimeError("boom")
    with database.transaction(write=False) as session:
        assert session.scalar(select(User).where(User.username == "ghost")) is None


def _probe_app(database, clock):
    """A tiny app on the real get_db: its streamed response body reports, from a separate
    connection, whether the request's row was already committed when sending began."""
    app = FastAPI()
    app.state.db = database

    @app.post("/write")
    def write(session: DbSession) -> StreamingResponse:
        session.add(User(username="probe", role=Role.admin, password_hash="x",
                         created_at=clock.now()))
        session.flush()

        def body():
            with database.engine.connect() as other:
                seen = other.execute(text("SELECT count(*) FROM users WHERE username='probe'"))
                yield f"committed={seen.scalar()}"

        return StreamingResponse(body())

    @app.post("/fail")
    def fail(session: DbSession) -> None:
        session.add(User(username="nope", role=Role.admin, password_hash="x",
                         created_at=clock.now()))
        session.flush()
        raise ValueError("handler failed")

    return app


def test_request_transaction_commits_before_the_response_is_sent(database, clock):
    with TestClient(_probe_app(database, clock), raise_server_exceptions=False) as client:
        assert client.post("/write").text == "committed=1"
        assert client.post("/fail").status_code == 500
    with database.transaction(write=False) as session:
        assert session.scalar(select(User).where(User.username == "nope")) is None
