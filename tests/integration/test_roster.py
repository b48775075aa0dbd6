"""Rosters and login tokens: CSV import (forgiving where harmless, located errors where not,
all or nothing), tokens kept only as HMAC + ciphertext, reissue, CSV and PDF card output, and
the same through the `cact` command. Real SQLite and PostgreSQL, no mocks."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.assembly.service import import_blueprint
from app.audit import AuditEvent
from app.auth.security import TOKEN_ALPHABET, decrypt_token, keyed_digest
from app.bank.parsed import ImportFailed
from app.delivery import attempts, timing
from app.sessions import roster
from app.sessions.cards import card_labels, cards_pdf, core_font_text, group_token
from app.sessions.models import Participant, RosterEntry
from app.sessions.service import SessionError, change_state, create_session
from tests.factories import BLUEPRINT, bank_zip, run_import
from tests.integration.test_demo_and_cli import cact

SECRET = "r" * 40
NIP_A, NIP_B, NIP_C = "198001012005011001", "198202022006042002", "199003032015031003"
INDONESIAN = (
    "NIP;Nama;Kelompok_Jabatan;Jenjang;Jabatan;Unit_Kerja\n"
    f"{NIP_A};Siti Rahma;pengawas;;Kepala Subbagian Umum;BKD\n"
    f"'{NIP_B};Budi Santoso;Fungsional;ahli muda;Analis SDM;Dinas Kesehatan\n"
    f"1990 0303 2015 03 1 003;\"Dr. Ani, M.Si\";administrator;;Kepala Bidang;Bappeda\n"
)


def scheduled(db, clock, code="S1"):
    run_import(db, clock, "uji.zip", bank_zip())
    import_blueprint(db, BLUEPRINT, source="bp.yaml", actor="t", now=clock.now())
    return create_session(db, code=code, name="Sesi uji", room="Lab 1", blueprint_code="UJI-BP",
                          starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=4),
                          actor="test", now=clock.now())


def load(db, clock, session, text: str):
    rows = roster.parse_roster(text.encode("utf-8"), source="peserta.csv")
    return roster.import_roster(db, session=session, rows=rows, secret=SECRET, actor="test",
                                now=clock.now())


def count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def tokens_by_nip(db, session):
    return {r.nip: r.token for r in roster.tokens_for_session(db, session=session,
                                                              secret=SECRET)}


def audit_text(db) -> str:
    return json.dumps([[e.action, e.target, e.reason, e.data]
                       for e in db.scalars(select(AuditEvent))])


def test_import_with_indonesian_headers_semicolons_and_excel_habits(db, clock):
    session = scheduled(db, clock)
    result = load(db, clock, session, "\ufeff" + INDONESIAN)  # Excel's "CSV UTF-8" has a BOM
    assert result == (3, 0)
    people = {p.nip: p for p in db.scalars(select(Participant))}
    assert set(people) == {NIP_A, NIP_B, NIP_C}  # apostrophe and spaces stripped
    budi = people[NIP_B]
    assert (budi.name, budi.job_group.value, budi.grade, budi.position, budi.unit) == (
        "Budi Santoso", "fungsional", "Ahli Muda", "Analis SDM", "Dinas Kesehatan")
    assert people[NIP_C].name == "Dr. Ani, M.Si"  # a comma is text in a semicolon file
    tokens = tokens_by_nip(db, session)
    assert all(len(t) == 8 and set(t) <= set(TOKEN_ALPHABET) for t in tokens.values())
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.import"))
    assert event.target == "session:S1" and event.data["added"] == 3
    assert not any(t in audit_text(db) for t in tokens.values())


def test_english_headers_with_commas_in_any_order(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, "unit,NAME,nip,job_group,grade,position,seat\n"
                             f"BKD,Siti,{NIP_A},pelaksana,,Staf,A-01\n")
    entry, person = roster.roster_rows(db, session)[0]
    assert (person.name, person.unit, person.position, entry.seat) == ("Siti", "BKD", "Staf",
                                                                       "A-01")


BAD = (
    "nip,nama,kelompok_jabatan,jenjang,hobi\n"
    f"{NIP_A},Siti,pengawas,,\n"                     # 2: fine
    "1.98001E+17,Budi,pengawas,,\n"                  # 3: Excel turned the NIP into a number
    f"{NIP_A},Ani,pengawas,,\n"                      # 4: NIP again
    "19800101200501,Dedi,pengawas,,\n"               # 5: 14 digits
    f"{NIP_B},,direktur,,\n"                         # 6: no name, unknown job group
    f"{NIP_C},Eka,fungsional,,\n"                    # 7: functional without grade
    "198104042008011004,Fajar,fungsional,Ahli Hebat,\n"  # 8: unknown grade
    ",Gita,pelaksana,,\n"                            # 9: no NIP
    f"198105052009012005,{'x' * 201},pelaksana,,\n"  # 10: name too long
    "198106062010011006,Hadi,pelaksana,,,extra\n"    # 11: more values than headers
    "19810707201101100X,Indah,pelaksana,,\n"         # 12: a letter in the NIP
)


def test_every_error_is_located_by_row_and_column_and_nothing_is_imported(db, clock):
    session = scheduled(db, clock)
    with pytest.raises(ImportFailed) as failed:
        load(db, clock, session, BAD)
    found = {(p.location, p.key) for p in failed.value.problems}
    assert found == {
        ("row 1, column E", "roster_unknown_column"),
        ("row 3, column nip (A)", "roster_nip_scientific"),
        ("row 4, column nip (A)", "roster_nip_duplicate"),
        ("row 5, column nip (A)", "roster_nip_digits"),
        ("row 6, column nama (B)", "roster_name_empty"),
        ("row 6, column kelompok_jabatan (C)", "roster_job_group"),
        ("row 7, column jenjang (D)", "roster_grade_required"),
        ("row 8, column jenjang (D)", "roster_grade_unknown"),
        ("row 9, column nip (A)", "roster_nip_empty"),
        ("row 10, column nama (B)", "roster_too_long"),
        ("row 11", "roster_extra_values"),
        ("row 12, column nip (A)", "roster_nip_digits"),
    }
    by_key = {p.key: p for p in failed.value.problems}
    assert "format the NIP column as text" in by_key["roster_nip_scientific"].message
    assert "Format Cells > Text" in by_key["roster_nip_scientific"].text("id")
    assert "also on row 2" in by_key["roster_nip_duplicate"].message
    assert "Ahli Muda" in by_key["roster_grade_required"].message  # the fix names the choices
    assert by_key["roster_nip_duplicate"].item == NIP_A
    assert count(db, Participant) == 0 and count(db, RosterEntry) == 0
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.import")) is None


@pytest.mark.parametrize(("data", "key"), [
    (b"nama,unit\nSiti,BKD\n", "roster_missing_columns"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 an old .xls",
     "table_xls"),
    (b"nip,name,job_group\n\n", "roster_empty"),
    (b"nip,name,job_group,name\n", "roster_duplicate_column"),
])
def test_file_level_problems(data, key):
    with pytest.raises(ImportFailed) as failed:
        roster.parse_roster(data, source="x.csv")
    assert key in {p.key for p in failed.value.problems}


def test_reimport_keeps_tokens_and_updates_details(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    before = tokens_by_nip(db, session)
    newer = INDONESIAN.replace("Siti Rahma", "Siti Rahmawati").replace(";BKD", ";Inspektorat")
    newer += "198104042008011004;Joko;pelaksana;;Staf;BKD\n"
    assert load(db, clock, session, newer) == (1, 3)
    after = tokens_by_nip(db, session)
    assert {n: after[n] for n in before} == before  # printed cards stay valid
    siti = db.scalar(select(Participant).where(Participant.nip == NIP_A))
    assert (siti.name, siti.unit) == ("Siti Rahmawati", "Inspektorat")
    # The same person in another session is the same participant, with a different token.
    other = create_session(db, code="S2", name="Sesi dua", room="", blueprint_code="UJI-BP",
                           starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=1),
                           actor="test", now=clock.now())
    load(db, clock, other, INDONESIAN)
    assert count(db, Participant) == 4
    assert tokens_by_nip(db, other)[NIP_A] != after[NIP_A]


def test_tokens_are_stored_only_as_hmac_and_ciphertext(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    tokens = tokens_by_nip(db, session)
    for entry, person in roster.roster_rows(db, session):
        token = tokens[person.nip]
        assert token.encode() not in entry.token_encrypted
        assert token not in entry.token_hmac
        assert entry.token_hmac == keyed_digest(SECRET, "participant-token", token)
        assert decrypt_token(SECRET, entry.token_encrypted) == token
    with pytest.raises(ValueError, match="secret"):
        decrypt_token("another-secret-" + "y" * 30, entry.token_encrypted)


def test_reissue_is_audited_and_the_old_token_stops_working(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    change_state(db, session=session, action="open", actor="test", now=clock.now())
    old = tokens_by_nip(db, session)[NIP_A]
    with pytest.raises(SessionError, match="reason"):
        roster.reissue_token(db, session=session, nip=NIP_A, reason=" ", secret=SECRET,
                             actor="user:admin", now=clock.now())
    with pytest.raises(SessionError, match="not on the roster"):
        roster.reissue_token(db, session=session, nip="199912312020121999", reason="hilang",
                             secret=SECRET, actor="user:admin", now=clock.now())
    new = roster.reissue_token(db, session=session, nip=NIP_A, reason="kartu hilang",
                               secret=SECRET, actor="user:admin", now=clock.now())
    assert new != old and tokens_by_nip(db, session)[NIP_A] == new
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.reissue_token"))
    assert (event.actor, event.reason, event.data) == (
        "user:admin", "kartu hilang", {"nip": NIP_A, "logged_out": False})
    assert old not in audit_text(db) and new not in audit_text(db)
    with pytest.raises(attempts.TakerError):
        attempts.login(db, nip=NIP_A, token=old, workstation="PC-1", client_addr="10.0.0.9",
                       secret=SECRET, now=clock.now())
    grouped = group_token(new.lower())  # what a person types from the card
    result = attempts.login(db, nip=NIP_A, token=grouped, workstation="PC-1",
                            client_addr="10.0.0.9", secret=SECRET, now=clock.now())
    assert result.participant.nip == NIP_A


def test_reissue_logs_out_whoever_holds_the_old_card_and_frees_the_seat(db, clock):
    """A card someone else saw: the reissue throws that person out at once, and the owner
    logs in with the new card at another computer, keeping their answers and deadline."""
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    change_state(db, session=session, action="open", actor="test", now=clock.now())
    old = tokens_by_nip(db, session)[NIP_A]
    intruder = attempts.login(db, nip=NIP_A, token=old, workstation="PC-9",
                              client_addr="10.0.0.99", secret=SECRET, now=clock.now())
    timing.start(db, attempt=intruder.attempt, now=clock.now())
    deadline = intruder.attempt.deadline_at
    assert attempts.attempt_for_access_token(db, token=intruder.access_token, secret=SECRET)
    new = roster.reissue_token(db, session=session, nip=NIP_A, reason="kartu terlihat orang",
                               secret=SECRET, actor="user:admin", now=clock.now())
    assert attempts.attempt_for_access_token(db, token=intruder.access_token,
                                             secret=SECRET) is None
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.reissue_token"))
    assert event.data == {"nip": NIP_A, "logged_out": True}
    clock.advance(60)
    owner = attempts.login(db, nip=NIP_A, token=new, workstation="PC-3",
                           client_addr="10.0.0.3", secret=SECRET, now=clock.now())
    assert owner.attempt.id == intruder.attempt.id and owner.attempt.deadline_at == deadline
    assert owner.attempt.workstation_id == "PC-3"


def test_removing_from_the_roster_only_before_any_work(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    change_state(db, session=session, action="open", actor="test", now=clock.now())
    tokens = tokens_by_nip(db, session)
    with pytest.raises(SessionError, match="reason"):
        roster.remove_from_roster(db, session=session, nip=NIP_C, reason="", actor="t",
                                  now=clock.now())
    # Logged in but still reading the instructions: the empty attempt goes with the entry.
    attempts.login(db, nip=NIP_C, token=tokens[NIP_C], workstation="PC-1",
                   client_addr="10.0.0.1", secret=SECRET, now=clock.now())
    roster.remove_from_roster(db, session=session, nip=NIP_C, reason="salah daftar",
                              actor="user:admin", now=clock.now())
    assert NIP_C not in tokens_by_nip(db, session)
    assert db.scalar(select(Participant).where(Participant.nip == NIP_C)) is not None
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.remove"))
    assert (event.reason, event.data) == ("salah daftar", {"nip": NIP_C, "had_attempt": True})
    with pytest.raises(attempts.TakerError):
        attempts.login(db, nip=NIP_C, token=tokens[NIP_C], workstation="PC-1",
                       client_addr="10.0.0.1", secret=SECRET, now=clock.now())
    # Started: the work is evidence, so removal is refused and nothing changes.
    started = attempts.login(db, nip=NIP_A, token=tokens[NIP_A], workstation="PC-2",
                             client_addr="10.0.0.2", secret=SECRET, now=clock.now())
    timing.start(db, attempt=started.attempt, now=clock.now())
    with pytest.raises(SessionError, match="already started"):
        roster.remove_from_roster(db, session=session, nip=NIP_A, reason="x", actor="t",
                                  now=clock.now())
    assert NIP_A in tokens_by_nip(db, session)
    with pytest.raises(SessionError, match="not on the roster"):
        roster.remove_from_roster(db, session=session, nip=NIP_C, reason="x", actor="t",
                                  now=clock.now())


def test_two_imports_of_the_same_new_people_at_once_both_succeed(database, clock, backend):
    """Two admins upload overlapping lists at the same moment: both imports succeed and
    everyone is on the roster once (no unique-constraint error, no duplicate person)."""
    import threading

    with database.transaction() as db:
        scheduled(db, clock)
    rows = roster.parse_roster(INDONESIAN.encode("utf-8"), source="peserta.csv")
    barrier, errors = threading.Barrier(2), []

    def run():
        try:
            if backend == "sqlite":  # one writer at a time by design: start them together
                barrier.wait(timeout=10)
            with database.transaction() as db:
                session = db.scalar(select(roster.TestSession))
                if backend == "postgresql":  # both have read "nobody known yet"
                    barrier.wait(timeout=10)
                roster.import_roster(db, session=session, rows=rows, secret=SECRET,
                                     actor="test", now=clock.now())
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with database.transaction(write=False) as db:
        assert count(db, Participant) == 3 and count(db, RosterEntry) == 3


def test_closed_session_roster_and_tokens_do_not_change(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN)
    change_state(db, session=session, action="close", actor="test", now=clock.now())
    with pytest.raises(SessionError, match="closed"):
        load(db, clock, session, INDONESIAN)
    with pytest.raises(SessionError, match="closed"):
        roster.reissue_token(db, session=session, nip=NIP_A, reason="x", secret=SECRET,
                             actor="test", now=clock.now())


def test_token_csv_has_nip_name_token_and_is_spreadsheet_safe(db, clock):
    session = scheduled(db, clock)
    load(db, clock, session, INDONESIAN + "198104042008011004;=HYPERLINK(1);pelaksana;;;\n")
    rows = roster.export_tokens(db, session=session, secret=SECRET, fmt="csv", actor="test",
                                now=clock.now())
    parsed = list(csv.DictReader(io.StringIO(roster.tokens_to_csv(rows))))
    assert list(parsed[0]) == ["nip", "name", "token"]
    assert sorted(p["name"] for p in parsed) == ["'=HYPERLINK(1)", "Budi Santoso",
                                                 "Dr. Ani, M.Si", "Siti Rahma"]
    assert {p["nip"]: p["token"] for p in parsed} == tokens_by_nip(db, session)
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "session.tokens_export"))
    assert event.data == {"format": "csv", "count": 4}


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def test_pdf_cards_ten_per_page_and_names_with_any_accent(db, clock):
    session = scheduled(db, clock)
    lines = ["nip,name,job_group"]
    names = ["Đặng Thị Ngọc Ánh", "Siti Nur’aini", "Łukasz Żółć", "Ñoño Ümit Çelik", "王小明"]
    for n in range(36):
        lines.append(f"19800101200501{n:04d},{names[n % len(names)]} {n},pelaksana")
    load(db, clock, session, "\n".join(lines) + "\n")
    rows = roster.tokens_for_session(db, session=session, secret=SECRET)
    pdf = cards_pdf(session=session, rows=rows, labels=card_labels("id"))
    assert pdf.startswith(b"%PDF-") and page_count(pdf) == 4
    assert page_count(cards_pdf(session=session, rows=rows[:10],
                                labels=card_labels("id"))) == 1
    assert page_count(cards_pdf(session=session, rows=rows[:11],
                                labels=card_labels("en"))) == 2


def test_card_text_helpers():
    assert group_token("ABCDEFGH") == "ABCD-EFGH"
    assert core_font_text("Đặng Thị Ánh") == "Dang Thi Ánh"  # Á is in Windows-1252
    assert core_font_text("Nur’aini Łukasz") == "Nur’aini Lukasz"
    assert core_font_text("王") == "?"
    assert card_labels("id")["title"] == "Kartu Login Ujian CACT"
    assert card_labels("id")["instruction"] == (
        "Buka halaman ujian di komputer lab, masukkan NIP dan token.")


def test_the_command_line_prints_cards_and_reissues(database, clock, tmp_path):
    with database.transaction() as db:
        run_import(db, clock, "uji.zip", bank_zip())
        import_blueprint(db, BLUEPRINT, source="bp.yaml", actor="t", now=clock.now())
    url = database.url
    made = cact(url, "session", "create", "CLI-1", "--name", "Seleksi 2026", "--blueprint",
                "UJI-BP", "--start", "2026-12-01 08:00", "--end", "2026-12-01 12:00")
    assert made.returncode == 0, made.stderr
    file = tmp_path / "peserta.csv"
    file.write_text(INDONESIAN, encoding="utf-8")
    assert "3 added" in cact(url, "roster", "import", "CLI-1", str(file)).stdout
    bad = tmp_path / "rusak.csv"
    bad.write_text(BAD, encoding="utf-8")
    refused = cact(url, "roster", "import", "CLI-1", str(bad))
    assert refused.returncode == 1 and "row 3, column nip (A)" in refused.stderr
    assert "12 problem(s)" in refused.stderr

    listed = list(csv.DictReader(io.StringIO(cact(url, "session", "tokens", "CLI-1").stdout)))
    assert [r["nip"] for r in listed] == [NIP_B, NIP_C, NIP_A]
    pdf = tmp_path / "kartu.pdf"
    written = cact(url, "session", "tokens", "CLI-1", "--format", "pdf", "--out", str(pdf))
    assert written.returncode == 0, written.stderr
    assert pdf.read_bytes().startswith(b"%PDF-") and page_count(pdf.read_bytes()) == 1
    assert cact(url, "session", "tokens", "CLI-1", "--format", "pdf").returncode == 2
    no_reason = cact(url, "session", "tokens", "CLI-1", "--reissue", NIP_A)
    assert no_reason.returncode == 1
    reissued = cact(url, "session", "tokens", "CLI-1", "--reissue", NIP_A, "--reason", "hilang")
    assert reissued.returncode == 0, reissued.stderr
    new = re.search(r"New token for NIP \d+: ([A-Z0-9]{8})", reissued.stdout).group(1)
    old = next(r["token"] for r in listed if r["nip"] == NIP_A)
    with database.transaction(write=False) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert actions.count("session.tokens_export") == 2
        assert "roster.reissue_token" in actions
        assert old not in audit_text(db) and new not in audit_text(db)
