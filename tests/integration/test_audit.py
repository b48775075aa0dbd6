"""The hash-chained audit log: intact chains verify; edits and deletions are caught, also by
`cact audit verify` run as a real command."""

import os
import subprocess
import sys

from sqlalchemy import text

from app import audit


def write_events(database, clock, n=5):
    with database.transaction() as session:
        for i in range(n):
            audit.record(session, actor="user:admin", action="test.event", target=f"t:{i}",
                         reason="because", data={"i": i, "nama": "Siti"}, now=clock.advance(1))


def tamper(database, statement):
    """Go around the application the way an insider with database access would."""
    with database.engine.begin() as conn:
        if database.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement))


def test_chain_links_every_row(database, clock):
    write_events(database, clock)
    with database.transaction(write=False) as session:
        rows = session.query(audit.AuditEvent).order_by(audit.AuditEvent.id).all()
        result = audit.verify(session)
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == audit.GENESIS_HASH
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    assert result.ok and result.checked == 5 and result.head_hash == rows[-1].hash


def test_record_is_part_of_the_callers_transaction(database, clock):
    write_events(database, clock, 2)
    try:
        with database.transaction() as session:
            audit.record(session, actor="x", action="never", now=clock.now())
            raise RuntimeError("the action failed")
    except RuntimeError:
        pass
    with database.transaction(write=False) as session:
        assert session.query(audit.AuditEvent).filter_by(action="never").count() == 0
        assert audit.verify(session).ok


def test_edited_row_is_named(database, clock):
    write_events(database, clock)
    tamper(database, "UPDATE audit_events SET reason = 'nothing happened' WHERE id = 3")
    with database.transaction(write=False) as session:
        result = audit.verify(session)
    assert not result.ok
    assert result.bad_id == 3 and result.checked == 2
    assert "altered" in result.problem


def test_deleted_row_is_detected(database, clock):
    write_events(database, clock)
    tamper(database, "DELETE FROM audit_events WHERE id = 2")
    with database.transaction(write=False) as session:
        result = audit.verify(session)
    assert not result.ok and result.bad_id == 3
    assert "missing" in result.problem


def test_relinked_forgery_is_still_detected(database, clock):
    """Changing a row and its hash breaks the next row's link."""
    write_events(database, clock)
    tamper(database,
           "UPDATE audit_events SET reason = 'x', hash = 'f' || substr(hash, 2) WHERE id = 4")
    with database.transaction(write=False) as session:
        result = audit.verify(session)
    assert not result.ok and result.bad_id == 4


def run_cli(database_url, *args, stdin=None):
    env = {**os.environ, "CACT_DATABASE_URL": database_url, "CACT_SECRET_KEY": "c" * 40}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=120)


def test_cli_verify_exit_codes(database, clock):
    write_events(database, clock)
    ok = run_cli(database.url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 5 rows" in ok.stdout
    tamper(database, "UPDATE audit_events SET actor = 'user:someone-else' WHERE id = 4")
    bad = run_cli(database.url, "audit", "verify")
    assert bad.returncode == 1
    assert "row 4" in bad.stderr and "3 rows before it are intact" in bad.stderr


def test_truncation_is_caught_against_an_anchor_noted_earlier(database, clock):
    """Deleting the newest rows leaves a valid chain; the head and count noted earlier (the
    close sheet, a backup manifest) show it."""
    write_events(database, clock, n=6)
    with database.transaction(write=False) as session:
        noted = audit.verify(session)
    assert noted.ok and noted.checked == 6
    write_events(database, clock, n=2)  # the log grows after the note: still fine
    ok = run_cli(database.url, "audit", "verify", "--head", noted.head_hash, "--count", "6")
    assert ok.returncode == 0, ok.stderr
    assert "intact: 8 rows" in ok.stdout and "noted head at row 6" in ok.stdout

    tamper(database, "DELETE FROM audit_events WHERE id >= 5")
    plain = run_cli(database.url, "audit", "verify")
    assert plain.returncode == 0  # the chain alone cannot tell
    short = run_cli(database.url, "audit", "verify", "--count", "6")
    assert short.returncode == 1 and "truncation" in short.stderr, short.stderr
    assert "rows 5 to 6 were removed" in short.stderr
    gone = run_cli(database.url, "audit", "verify", "--head", noted.head_hash)
    assert gone.returncode == 1 and "in no row of the log" in gone.stderr, gone.stderr
