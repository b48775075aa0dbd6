"""Engine, sessions and the transaction rule: the ONLY module that commits.

One transaction per HTTP request or CLI command. Services ``flush()`` when they need an id and
never commit, so an import, a submit or a proctor action is all or nothing.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a commit is on disk
before we acknowledge it, even across a power cut. Transactions that may write begin with
``BEGIN IMMEDIATE`` so they queue for the single write lock instead of failing half-way with
"database is locked" when a read snapshot cannot be upgraded; inside one process they queue on
a plain mutex first (fair and cheap, where SQLite's busy handler polls with growing sleeps).

Read requests (GET) run in a transaction that is always rolled back and never autoflushes: a
page may compute state (the clock moving an attempt on) without writing it, and the write
happens in the next write request or the sweeper. A GET that must write declares ``WriteDb``.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Enum,
    Integer,
    MetaData,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator
from starlette.concurrency import run_in_threadpool

from app import paths

if TYPE_CHECKING:
    from app.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Write requests let into the database at once per process (SQLite): enough to overlap their
# Python work, far below the worker-thread pool (40) so waiting never exhausts it.
WRITE_REQUESTS_IN_FLIGHT = 8
_WRITE_OPTION = "cact_write"


class RecordedRefusal(Exception):
    """Raised by a service that refuses a request but has written why (a failed login counts
    toward the throttle and is audited): the transaction is committed, then the refusal is
    raised on to become the error response."""


def hold(db: Session, *objects: object) -> None:
    """Keep loaded objects in ``db``'s identity map until the session is closed. The map holds
    only what something references: an object loaded beside another (a joined row) and not
    kept is dropped at once, and the next ``db.get`` of it asks the database again."""
    db.info.setdefault("cact_held", []).extend(objects)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite keeps them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None,
                             dialect: Any) -> datetime | None:  # noqa: ARG002 - base's signature
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# 64-bit keys for the tables that grow fastest; SQLite autoincrements only "INTEGER PRIMARY KEY".
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint (no native PG type)."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, cache_kib: int) -> None:
    writer = threading.Lock()  # one writer at a time in this process
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # The page cache of each pooled connection (negative: KiB), which fills as the
        # database grows and stays: up to 20 kept connections times this.
        cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        if immediate:
            if not writer.acquire(timeout=busy_timeout_ms / 1000):
                raise OperationalError("BEGIN IMMEDIATE", {}, TimeoutError(
                    "database is busy: no write slot within the busy timeout"))
            conn.info["cact_writer"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn)
                raise
        else:
            conn.exec_driver_sql("BEGIN")

    def _release(conn: Any) -> None:
        if conn.info.pop("cact_writer", False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)


SQLITE_CACHE_KIB = 2000  # SQLite's own default page cache per connection


def make_engine(url: str, *, busy_timeout_ms: int = 10000,
                sqlite_cache_kib: int = SQLITE_CACHE_KIB) -> Engine:
    """An engine for ``url`` with the project's settings; the backend is chosen by the URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            # Threads that wait for the write slot hold a connection: keep enough for readers.
            pool_size=20,
            max_overflow=40,
        )
        _configure_sqlite(engine, busy_timeout_ms, sqlite_cache_kib)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """The engine plus the two session factories (read, write) of one process."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10000,
                 sqlite_cache_kib: int = SQLITE_CACHE_KIB) -> None:
        import app.models  # noqa: F401 - every table mapped, so foreign keys resolve anywhere

        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms,
                                  sqlite_cache_kib=sqlite_cache_kib)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._read = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False, autoflush=True)
        self._gate: asyncio.Semaphore | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        """The database ``settings`` name, with their tuning (busy timeout, page cache)."""
        return cls(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                   sqlite_cache_kib=settings.sqlite_cache_kib)

    def new_session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @asynccontextmanager
    async def write_gate(self, write: bool) -> AsyncIterator[None]:
        """Bound how many write requests of this process are inside the database at once
        (SQLite only). A request waits here without holding a worker thread; the few let
        through wait for the write slot in their thread. Without this bound every worker
        thread could be waiting for the slot while its holder needed one more thread to
        finish, and the process would stall until the busy timeout."""
        if not (write and self.is_sqlite):
            yield
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(WRITE_REQUESTS_IN_FLIGHT)
        async with self._gate:
            yield

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: commit when the block ends normally, roll back on any exception.
        A read-only block is never committed: closing it returns the connection, whose
        transaction the pool rolls back, and leaves loaded objects readable."""
        session = (self._write if write else self._read)()
        try:
            yield session
            if write:
                session.commit()
        except RecordedRefusal:
            if write:
                session.commit()
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def run(self, work: Callable[[Session], Any], write: bool) -> Any:
        with self.transaction(write=write) as session:
            return work(session)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


@asynccontextmanager
async def _request_session(request: Request, *, write: bool) -> AsyncIterator[Session]:
    database: Database = request.app.state.db
    async with database.write_gate(write):
        session = database.new_session(write=write)
        try:
            yield session
            if write:
                await run_in_threadpool(session.commit)
        except RecordedRefusal:
            if write:
                await run_in_threadpool(session.commit)
            raise
        except BaseException:
            await run_in_threadpool(session.rollback)
            raise
        finally:
            await run_in_threadpool(session.close)


async def get_db(request: Request) -> AsyncIterator[Session]:
    """Request-scoped session; committed before the response is sent (dependency scope
    "function"), so a client never sees an acknowledgement for data that is not durable."""
    async with _request_session(request, write=request.method not in SAFE_METHODS) as session:
        yield session


async def get_write_db(request: Request) -> AsyncIterator[Session]:
    """For the rare GET that must write (and be acknowledged only once durable)."""
    async with _request_session(request, write=True) as session:
        yield session


async def in_transaction(request: Request, work: Callable[[Session], Any], *,
                         write: bool = True) -> Any:
    """Run ``work(session)`` in one transaction, begun and committed in a single worker-thread
    call. The hot taker requests use this instead of a request-scoped session: a SQLite write
    slot is then never held across trips through the event loop (which, under a rush of
    hundreds of connections, multiplied the time each save held the slot)."""
    database: Database = request.app.state.db
    async with database.write_gate(write):
        return await run_in_threadpool(database.run, work, write)


DbSession = Annotated[Session, Depends(get_db, scope="function")]
# An integer id in a URL: bounded, so a huge number is a 422, never a database overflow (500).
RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
# The same for integers in a query string (security review #13): a page number, and the id of a
# BIGINT row ("older than" links), so ?page=99999999999999999999 is a 422, never a 500.
PageNumber = Annotated[int, Query(ge=1, le=2**31 - 1)]
BigRowIdQuery = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
WriteDb = Annotated[Session, Depends(get_write_db, scope="function")]


# -- Alembic -------------------------------------------------------------------------------------

# The checkout's migrations/ or, in an installed wheel, its packaged copy (app/paths.py).
MIGRATIONS_DIR = paths.MIGRATIONS_DIR


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option(
        "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"
    )
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def schema_is_current(engine: Engine) -> tuple[bool, str | None, str | None]:
    """(is current, revision in the database, head revision of the code)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current == head, current, head
