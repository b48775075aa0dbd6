"""`cact demo` is complete and idempotent; the CLI manages accounts and refuses bad input."""

import os
import subprocess
import sys

from sqlalchemy import func, select

from app import audit
from app.assembly.models import Blueprint
from app.auth.models import User
from app.auth.security import decrypt_token, keyed_digest
from app.demo import load_demo
from app.models import Base
from app.programmes.models import Programme
from app.scoring.models import JobStandard
from app.sessions.models import Participant, ProctorAssignment, RosterEntry, TestSession


def row_counts(session):
    return {t.name: session.scalar(select(func.count()).select_from(t))
            for t in Base.metadata.sorted_tables}


def test_demo_is_complete_and_idempotent(database, settings, clock):
    with database.transaction() as session:
        first = load_demo(session, settings=settings, now=clock.now())
    with database.transaction(write=False) as session:
        counts = row_counts(session)
        demo = session.scalar(select(TestSession).where(TestSession.code == "DEMO"))
        assert demo.state.value == "open"
        assert demo.starts_at <= clock.now() <= demo.ends_at
        blueprint = session.get(Blueprint, demo.blueprint_id)
        assert len(blueprint.spec["sections"]) >= 2
        assert counts["roster_entries"] >= 30 and counts["participants"] >= 30
        assert {u.role.value for u in session.scalars(select(User))} == {"admin", "proctor"}
        # The demo proctor watches both sessions of the demo programme.
        assert counts["proctor_assignments"] == 2
        programme = session.scalar(select(Programme))
        assert programme.code == "PEMETAAN-2026" and programme.purpose.value == "mapping"
        days = session.scalars(select(TestSession).where(
            TestSession.programme_id == programme.id).order_by(TestSession.starts_at)).all()
        assert [s.code for s in days] == ["DEMO", "DEMO-LAB"]
        assert days[0].room != days[1].room
        assert days[0].starts_at.date() < days[1].starts_at.date()
        second_day = session.scalars(select(RosterEntry.participant_id).where(
            RosterEntry.session_id == days[1].id)).all()
        first_day = session.scalars(select(RosterEntry.participant_id).where(
            RosterEntry.session_id == days[0].id)).all()
        assert len(second_day) == 12 and not set(second_day) & set(first_day)
        assert session.scalar(select(func.count()).select_from(JobStandard)) == 99
        nips = session.scalars(select(Participant.nip)).all()
        assert all(len(n) == 18 and n.isdigit() for n in nips) and len(set(nips)) == len(nips)
        entry = session.scalars(select(RosterEntry)).first()
        token = decrypt_token(settings.resolved_secret(), entry.token_encrypted)
        assert entry.token_hmac == keyed_digest(settings.resolved_secret(), "participant-token",
                                                token)
        assert token.encode() not in entry.token_encrypted  # never stored in plain text
    with database.transaction() as session:
        second = load_demo(session, settings=settings, now=clock.advance(3600))
    with database.transaction(write=False) as session:
        assert row_counts(session) == counts  # nothing added twice
        assert audit.verify(session).ok
    assert second.created == [] and first.created
    assert second.tokens == first.tokens  # the same cards can be printed again
    assert "already present" in second.describe() and "DEMO" in second.describe()


def test_demo_proctor_sees_the_demo_session(client, database, settings, clock):
    with database.transaction() as session:
        load_demo(session, settings=settings, now=clock.now())
        assert session.scalar(select(func.count()).select_from(ProctorAssignment)) == 2
    from tests.conftest import staff_login

    assert staff_login(client, "pengawas", "demo-pengawas-2026").status_code == 303
    page = client.get("/proctor")
    assert "DEMO" in page.text and "Lab Komputer 1" in page.text


def cact(database_url, *args, stdin=None, extra_env=None):
    env = {**os.environ, "CACT_DATABASE_URL": database_url, "CACT_SECRET_KEY": "c" * 40,
           "CACT_ARGON2_TIME_COST": "2", "CACT_ARGON2_MEMORY_KIB": "19456",
           **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, input=stdin, timeout=120)


def test_cli_help_lists_every_group():
    result = subprocess.run([sys.executable, "-m", "app.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for group in ("db", "user", "demo", "serve", "audit"):
        assert group in result.stdout


def test_cli_creates_users_from_stdin_and_refuses_bad_input(database):
    made = cact(database.url, "user", "create", "ibu.kepala", "--role", "admin",
                "--full-name", "Ibu Kepala", "--password-stdin", stdin="rahasia-sekali-1\n")
    assert made.returncode == 0, made.stderr
    again = cact(database.url, "user", "create", "ibu.kepala", "--role", "admin",
                 "--password-stdin", stdin="rahasia-sekali-1\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad_role = cact(database.url, "user", "create", "x2", "--role", "root", "--password-stdin",
                    stdin="rahasia-sekali-1\n")
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr
    short = cact(database.url, "user", "create", "x3", "--role", "proctor", "--password-stdin",
                 stdin="short\n")
    assert short.returncode == 1 and "at least 10" in short.stderr
    listed = cact(database.url, "user", "list")
    assert "ibu.kepala\tadmin\tactive\tIbu Kepala" in listed.stdout
    with database.transaction(write=False) as session:
        assert session.scalar(select(User.password_hash)).startswith("$argon2id$")
        actions = [e.action for e in session.scalars(select(audit.AuditEvent))]
    assert actions == ["user.create"]


def test_cli_stops_on_invalid_settings_with_a_clear_message(database):
    result = cact(database.url, "db", "status", extra_env={"CACT_LANGUAGE": "fr"})
    assert result.returncode == 78  # EX_CONFIG: the systemd unit does not restart on it
    assert "CACT_LANGUAGE" in result.stderr and "Traceback" not in result.stderr


def test_cli_refuses_an_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = cact(url, "user", "list")
    assert result.returncode == 1 and "cact db upgrade" in result.stderr
    assert cact(url, "db", "upgrade").returncode == 0
    assert cact(url, "db", "status").returncode == 0


def test_cli_bank_import_export_and_blueprint(database, tmp_path):
    import yaml

    from tests.factories import bank_doc, bank_zip

    good = tmp_path / "uji.zip"
    good.write_bytes(bank_zip())
    done = cact(database.url, "bank", "import", str(good))
    assert done.returncode == 0, done.stderr
    assert "UJI-POT version 1: 5 items, imported" in done.stdout
    same = cact(database.url, "bank", "import", str(good))
    assert "unchanged" in same.stdout
    doc = bank_doc()
    doc["items"][0]["options"][1].pop("key")
    bad = tmp_path / "rusak.zip"
    bad.write_bytes(bank_zip(doc))
    refused = cact(database.url, "bank", "import", str(bad))
    assert refused.returncode == 1
    assert "Nothing was imported: 1 problem(s)" in refused.stderr
    assert "rusak.zip:bank.yaml, line" in refused.stderr and "[NUM-1]" in refused.stderr
    out = tmp_path / "ekspor.zip"
    exported = cact(database.url, "bank", "export", "UJI-POT", "--out", str(out))
    assert exported.returncode == 0 and out.stat().st_size > 0
    # Every key and weight left the server: audited as from the web page.
    with database.transaction(write=False) as db:
        row = db.scalar(select(audit.AuditEvent).where(audit.AuditEvent.action == "bank.export"))
    assert row is not None and (row.actor, row.target) == ("cli", "bank:UJI-POT/v1")
    assert "unchanged" in cact(database.url, "bank", "import", str(out)).stdout
    fixed = cact(database.url, "bank", "correct-key", "UJI-POT", "NUM-1", "--key", "A",
                 "--reason", "salah ketik")
    assert fixed.returncode == 0 and "key revision 1" in fixed.stdout
    blueprint = tmp_path / "bp.yaml"
    blueprint.write_text(yaml.safe_dump({
        "format": "cact-blueprint/1", "code": "UJI-BP", "name": "Uji", "sections": [
            {"title": "A", "picks": [{"bank": "UJI-POT", "construct": "potensi.numerik",
                                      "count": 1}]}]}))
    made = cact(database.url, "blueprint", "import", str(blueprint))
    assert made.returncode == 0 and "UJI-BP: 1 sections" in made.stdout
    assert "UJI-BP\tUji\t1 sections\t1 items" in cact(database.url, "blueprint", "list").stdout
    assert "UJI-POT\tv1\tpotensi\t5 items" in cact(database.url, "bank", "list").stdout


def test_cli_unlocks_a_seat(database, settings, clock):
    from app.delivery import attempts
    from app.delivery.attempts import TakerError
    from tests.factories import make_open_session

    secret = "c" * 40  # what cact() passes as CACT_SECRET_KEY
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=secret)
        attempts.login(db, nip=logins[0][0], token=logins[0][1], workstation="PC-1",
                       client_addr="x", secret=secret, now=clock.now())
    with database.transaction() as db:
        try:
            attempts.login(db, nip=logins[0][0], token=logins[0][1], workstation="PC-2",
                           client_addr="x", secret=secret, now=clock.now())
            raise AssertionError("a second computer must be refused")
        except TakerError as exc:
            assert exc.status == 409
    missing = cact(database.url, "attempt", "unlock", "S1", "1" * 18, "--reason", "x")
    assert missing.returncode == 1 and "No attempt" in missing.stderr
    done = cact(database.url, "attempt", "unlock", "S1", logins[0][0], "--reason", "PC-1 mati")
    assert done.returncode == 0, done.stderr
    with database.transaction() as db:
        moved = attempts.login(db, nip=logins[0][0], token=logins[0][1], workstation="PC-2",
                               client_addr="x", secret=secret, now=clock.now())
        assert moved.attempt.workstation_id == "PC-2"
