"""Safe commands (issue #12, 9): `cact db downgrade` asks first and refuses while a server is
serving the database; a database newer than the code says to install that version; the
workers of `cact serve` stop when the parent is killed. The real `cact` command on a fresh
SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from app.audit import AuditEvent
from app.db import Database
from app.ops.state import set_value
from tests.conftest import create_pg_database, drop_pg_database, pg_reachable, unavailable
from tests.e2e.conftest import start_server
from tests.integration.test_demo_and_cli import cact

NEWER = "f00dfeed0099"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path) -> Iterator[str]:
    """A migrated database of its own (downgrading the shared test database would break
    every other test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cact.sqlite3'}"
        yield _upgraded(url)
        return
    problem = pg_reachable()
    if problem:
        unavailable(problem)
    url = create_pg_database("cact_safe")
    try:
        yield _upgraded(url)
    finally:
        drop_pg_database(url)


def _upgraded(url: str) -> str:
    made = cact(url, "db", "upgrade")
    assert made.returncode == 0, made.stderr
    return url


def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.dialect.get_table_names(conn)
            if "alembic_version" not in tables:
                return None
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def head() -> str:
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def write_heartbeat(url: str, at: datetime) -> None:
    database = Database(url)
    try:
        with database.transaction() as db:
            set_value(db, "heartbeat", {"at": at.isoformat(), "pid": 1, "host": "lab"}, now=at)
    finally:
        database.dispose()


def test_downgrade_asks_first_and_yes_skips_the_question(fresh_url):
    top = head()
    refused = cact(fresh_url, "db", "downgrade", "base", stdin="n\n")
    assert refused.returncode == 1
    assert "ALL DATA IS LOST" in refused.stdout and "Continue?" in refused.stdout
    assert revision(fresh_url) == top  # nothing dropped
    no_answer = cact(fresh_url, "db", "downgrade", "base", stdin="")
    assert no_answer.returncode == 1 and revision(fresh_url) == top
    step = cact(fresh_url, "db", "downgrade", "-1", stdin="y\n")
    assert step.returncode == 0, step.stderr
    assert revision(fresh_url) not in (None, top)
    database = Database(fresh_url)
    try:
        with database.transaction(write=False) as db:
            event = db.scalars(select(AuditEvent)).one()
        assert (event.action, event.target, event.data) == ("db.downgrade", "-1", {"from": top})
    finally:
        database.dispose()
    gone = cact(fresh_url, "db", "downgrade", "base", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "Continue?" not in gone.stdout and revision(fresh_url) is None


def test_downgrade_is_refused_while_a_heartbeat_is_fresh(fresh_url):
    top = head()
    write_heartbeat(fresh_url, datetime.now(UTC))
    refused = cact(fresh_url, "db", "downgrade", "base", "--yes")
    assert refused.returncode == 1
    assert "the server is serving this database" in refused.stderr
    assert "systemctl stop cact" in refused.stderr and "Traceback" not in refused.stderr
    assert revision(fresh_url) == top
    # A server stopped a minute ago (heartbeat 2 s, 3 missed beats = stopped) is no obstacle.
    write_heartbeat(fresh_url, datetime.now(UTC) - timedelta(seconds=60))
    allowed = cact(fresh_url, "db", "downgrade", "base", "--yes")
    assert allowed.returncode == 0, allowed.stderr
    assert revision(fresh_url) is None


def test_downgrade_is_refused_while_a_real_server_serves(tmp_path):
    data_dir = tmp_path / "data"
    # The key the upgrade gave the database (`cact db upgrade` records it), so the server
    # starts on it.
    env = {**os.environ, "CACT_DATA_DIR": str(data_dir), "CACT_DATABASE_URL": "",
           "CACT_SECRET_KEY": "c" * 40}
    url = f"sqlite:///{data_dir / 'cact.sqlite3'}"
    _upgraded(url)
    proc, _base = start_server(env, tmp_path / "server.log")
    try:
        time.sleep(1)  # the first heartbeat is written as the worker starts
        refused = cact(url, "db", "downgrade", "base", "--yes",
                       extra_env={"CACT_SECRET_KEY": ""})
        assert refused.returncode == 1, refused.stderr
        assert "systemctl stop cact" in refused.stderr
        assert revision(url) == head()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_database_newer_than_the_code_says_to_install_that_version(fresh_url):
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": NEWER})
    engine.dispose()
    for args in (["db", "upgrade"], ["db", "status"], ["db", "downgrade", "-1", "--yes"],
                 ["user", "list"], ["serve", "--port", "1"]):
        result = cact(fresh_url, *args)
        assert result.returncode == 78, (args, result.stdout, result.stderr)
        assert f"made by a newer CACT version (revision {NEWER})" in result.stderr
        assert "install that version instead (do not downgrade" in result.stderr
        assert "Traceback" not in result.stderr
    assert revision(fresh_url) == NEWER


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_workers_stop_when_the_parent_is_killed(tmp_path):
    data_dir = tmp_path / "data"
    env = {**os.environ, "CACT_DATA_DIR": str(data_dir), "CACT_DATABASE_URL": "",
           "CACT_SECRET_KEY": "c" * 40}  # the key `cact db upgrade` recorded
    _upgraded(f"sqlite:///{data_dir / 'cact.sqlite3'}")
    proc, base = start_server(env, tmp_path / "server.log", "--workers", "2")
    port = int(base.rsplit(":", 1)[1])
    try:
        workers = children(proc.pid)
        assert len(workers) >= 2, (workers, (tmp_path / "server.log").read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (port_open(port)
                                               or any(alive(w) for w in workers)):
            time.sleep(0.2)
        left = [w for w in workers if alive(w)]
        assert not left, f"workers {left} outlived their parent"
        assert not port_open(port), "the port is still held"
    finally:
        for worker in children(proc.pid) + [w for w in workers if alive(w)]:
            os.kill(worker, signal.SIGKILL)


def test_serve_on_an_old_schema_stops_for_good(tmp_path):
    """The unit does not migrate on start: a restart cannot fix an old schema, so serve exits
    78 (no crash loop) and says to run `cact db upgrade`; other commands keep exit 1."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(head()).down_revision
    made = cact(url, "db", "upgrade", previous)
    assert made.returncode == 0, made.stderr
    served = cact(url, "serve", "--port", "1")
    assert served.returncode == 78 and "cact db upgrade" in served.stderr
    listed = cact(url, "user", "list")
    assert listed.returncode == 1 and "cact db upgrade" in listed.stderr

