"""Shared fixtures: real SQLite files and a real PostgreSQL database, built once with Alembic.

Every database test runs on both backends (``backend`` is parametrised). SQLite tests each get a
copy of a migrated template file; PostgreSQL tests share one fresh database created for this
run (dropped at the end) and are emptied with TRUNCATE after each test.

Under CI (CI=true) a missing PostgreSQL or Chromium is a failure, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import app.models  # every table in Base.metadata
from app import db as app_db
from app.clock import FrozenClock
from app.db import Base, Database
from app.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "CACT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# argon2id at OWASP's floor keeps the suite fast; production defaults are higher.
FAST_ARGON2 = {"argon2_time_cost": 2, "argon2_memory_kib": 19456, "argon2_parallelism": 1}
BACKENDS = ["sqlite", "postgresql"]


def unavailable(reason: str) -> None:
    """Skip loudly outside CI; fail under CI, where every test must run."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(f"SKIPPED (not in CI): {reason}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.write_line(f"CI: {len(skipped)} tests skipped; skips fail CI", red=True)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and exitstatus == 0:
        session.exitstatus = 1


# -- PostgreSQL ---------------------------------------------------------------------------------


def _pg_admin(statement: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def create_pg_database(prefix: str = "cact_test") -> str:
    """Create an empty database and return its URL (the caller drops it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def pg_reachable() -> str | None:
    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {PG_ADMIN_URL} not reachable ({type(exc).__name__})"
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    problem = pg_reachable()
    if problem:
        unavailable(problem)
    url = create_pg_database()
    app_db.upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def pg_database(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.dispose()


def truncate_all(database: Database) -> None:
    from app.delivery import content

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    content.forget(database.engine)  # ids start from 1 again: cached item content is stale


# -- SQLite -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    app_db.upgrade(f"sqlite:///{path}")
    return path


# -- per test -----------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of the test's backend."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "cact.sqlite3"
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("pg_database")
        try:
            yield database
        finally:
            truncate_all(database)


@pytest.fixture
def db(database: Database) -> Iterator[Session]:
    """A session for service tests; its work is rolled back at the end of the test."""
    session = Session(database.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database.url,
        secret_key="test-secret-" + "x" * 40,
        **FAST_ARGON2,
    )


@pytest.fixture
def app(settings: Settings, clock: FrozenClock, database: Database):
    from app.main import create_app

    return create_app(settings, clock=clock, database=database)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def log_in_admin(client, make_user) -> object:
    """Create the admin "admin" and log ``client`` in as them."""
    assert staff_login(client, "admin", make_user("admin")).status_code == 303
    return client


@pytest.fixture
def admin(client, make_user):
    """The test client, logged in as the admin "admin". A test file that needs more around
    it (a blueprint, English pages) overrides this fixture and asks for it by the same name."""
    return log_in_admin(client, make_user)


@pytest.fixture
def proctor(client, make_user):
    """The test client, logged in as the proctor "pak.budi" (assigned to no session yet)."""
    make_user("pak.budi", role="proctor")
    assert staff_login(client, "pak.budi", "correct-horse-1").status_code == 303
    return client


def run_coroutine(coro):
    """Run ``coro`` to its end from a plain test, in a thread of its own: the browser tests'
    sync Playwright leaves an event loop running in the main thread, where asyncio.run fails."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def staff_login(client, username: str, password: str, **extra) -> object:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text),
              **extra},
        follow_redirects=False,
    )


@pytest.fixture
def make_user(database: Database, settings: Settings, clock: FrozenClock):
    """Create a staff account directly through the service (committed)."""
    from app.auth import service
    from app.auth.models import Role
    from app.auth.security import settings_hasher

    hasher = settings_hasher(settings)

    def make(username: str, role: str = "admin", password: str = "correct-horse-1") -> str:
        with database.transaction() as session:
            service.create_user(session, hasher=hasher, username=username, password=password,
                                role=Role(role), actor="test", now=clock.now())
        return password

    return make
