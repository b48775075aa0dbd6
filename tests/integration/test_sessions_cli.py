"""Running an event from the command line: schedule a session (freezing its banks), import the
roster with located errors, export tokens, open, and close (handing in running attempts)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from app.assembly.service import import_blueprint
from app.bank.models import BankVersion
from app.clock import SystemClock
from app.delivery import attempts, timing
from app.delivery.models import Attempt
from app.sessions.models import Participant, RosterEntry, TestSession
from tests.factories import BLUEPRINT, bank_zip, run_import
from tests.integration.test_demo_and_cli import cact

SECRET = "c" * 40  # what cact() passes as CACT_SECRET_KEY
ROSTER = ("nip;nama;kelompok_jabatan;jenjang;jabatan;unit_kerja\n"
          "198001012005011001;Siti Rahma;pengawas;;Kepala Subbagian;BKD\n"
          "'198202022006042002;Budi Santoso;fungsional;Ahli Muda;Analis;Dinas Kesehatan\n")


def prepare(database, clock):
    with database.transaction() as db:
        run_import(db, clock, "uji.zip", bank_zip())
        import_blueprint(db, BLUEPRINT, source="bp.yaml", actor="t", now=clock.now())


def test_an_event_from_the_command_line(database, clock, tmp_path):
    prepare(database, clock)
    made = cact(database.url, "session", "create", "uji-1", "--blueprint", "UJI-BP",
                "--start", "2026-12-01 08:00", "--end", "2026-12-01 12:00", "--room", "Lab 1")
    assert made.returncode == 0, made.stderr
    with database.transaction(write=False) as db:
        session = db.scalar(select(TestSession))
        assert session.code == "UJI-1" and session.state.value == "scheduled"
        assert session.starts_at.hour == 1  # 08:00 WIB is 01:00 UTC
        assert all(db.scalars(select(BankVersion.frozen)))
    again = cact(database.url, "session", "create", "UJI-1", "--blueprint", "UJI-BP",
                 "--start", "2026-12-01 08:00", "--end", "2026-12-01 12:00")
    assert again.returncode == 1 and "already exists" in again.stderr

    roster = tmp_path / "peserta.csv"
    roster.write_text(ROSTER)
    done = cact(database.url, "roster", "import", "UJI-1", str(roster))
    assert done.returncode == 0 and "2 added" in done.stdout, done.stderr
    assert "0 added, 2 already there" in cact(database.url, "roster", "import", "UJI-1",
                                              str(roster)).stdout
    tokens = list(csv.DictReader(io.StringIO(cact(database.url, "session", "tokens",
                                                  "UJI-1").stdout)))
    assert [t["name"] for t in tokens] == ["Budi Santoso", "Siti Rahma"]
    assert all(len(t["token"]) == 8 for t in tokens)
    with database.transaction(write=False) as db:
        stored = db.scalars(select(RosterEntry.token_encrypted)).all()
        assert not any(t["token"].encode() in blob for t in tokens for blob in stored)

    assert "is open" in cact(database.url, "session", "open", "UJI-1").stdout
    budi = next(t for t in tokens if t["name"] == "Budi Santoso")
    unreasoned = cact(database.url, "roster", "remove", "UJI-1", budi["nip"], "--reason", " ")
    assert unreasoned.returncode == 1 and "reason" in unreasoned.stderr
    removed = cact(database.url, "roster", "remove", "UJI-1", budi["nip"], "--reason", "sakit")
    assert removed.returncode == 0 and "removed" in removed.stdout, removed.stderr
    assert [t["name"] for t in csv.DictReader(io.StringIO(cact(
        database.url, "session", "tokens", "UJI-1").stdout))] == ["Siti Rahma"]
    siti = next(t for t in tokens if t["name"] == "Siti Rahma")
    now = SystemClock().now()  # the CLI closes on the real clock; start the attempt on it too
    with database.transaction() as db:
        result = attempts.login(db, nip=siti["nip"], token=siti["token"], workstation="PC-1",
                                client_addr="x", secret=SECRET, now=now)
        timing.start(db, attempt=result.attempt, now=now)
    # A switch failure: the IT officer pauses the room from the server's own console.
    paused = cact(database.url, "session", "pause", "UJI-1", "--reason", "switch mati")
    assert paused.returncode == 0 and "is paused" in paused.stdout, paused.stderr
    with database.transaction(write=False) as db:
        assert db.scalar(select(Attempt.state)).value == "paused"
        from app.audit import AuditEvent
        assert db.scalar(select(AuditEvent.reason).where(AuditEvent.action == "session.pause")
                         ) == "switch mati"
    resumed = cact(database.url, "session", "resume", "UJI-1")
    assert resumed.returncode == 0 and "is open" in resumed.stdout, resumed.stderr
    with database.transaction(write=False) as db:
        assert db.scalar(select(Attempt.state)).value == "active"
    closed = cact(database.url, "session", "close", "UJI-1", "--yes")
    assert closed.returncode == 0 and "1 attempt(s) handed in" in closed.stdout
    # The audit anchor to write on the close sheet, and it verifies as printed.
    anchor = closed.stdout.split("cact audit verify ")[1].split(")")[0].split()
    checked = cact(database.url, "audit", "verify", *anchor)
    assert checked.returncode == 0 and "noted head" in checked.stdout, checked.stderr
    with database.transaction(write=False) as db:
        assert db.scalar(select(Attempt.state)).value == "submitted"
    refused = cact(database.url, "session", "open", "UJI-1")
    assert refused.returncode == 1 and "closed" in refused.stderr


def test_a_bad_roster_is_refused_whole_with_located_errors(database, clock, tmp_path):
    prepare(database, clock)
    cact(database.url, "session", "create", "UJI-2", "--blueprint", "UJI-BP", "--start",
         "2026-12-01 08:00", "--end", "2026-12-01 12:00")
    roster = tmp_path / "rusak.csv"
    roster.write_text("nip,name,job_group,grade\n"
                      "198001012005011001,Siti,pengawas,\n"
                      "1.98001E+17,Budi,pengawas,\n"
                      "198001012005011001,Ani,pengawas,\n"
                      "198001012005011004,,direktur,\n"
                      "198001012005011005,Dedi,fungsional,\n")
    refused = cact(database.url, "roster", "import", "UJI-2", str(roster),
                   extra_env={"CACT_LANGUAGE": "en"})  # problems print in the server language
    assert refused.returncode == 1
    for expected in ("row 3, column nip", "format the NIP column as text",
                     "row 4, column nip", "also on row 2", "row 5, column name",
                     "row 5, column job_group", "row 6, column grade"):
        assert expected in refused.stderr, expected
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(Participant)) == 0
