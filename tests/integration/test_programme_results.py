"""One programme, two sessions, 180 people: the programme's results have exactly one row per
NIP, each from the attempt that counts (a retake replaces an attempt with nothing answered), an
admin can choose another attempt with a reason (audited), and the page, the CSV, the XLSX and
the CLI say the same."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app import audit
from app.audit import AuditEvent
from app.auth.security import decrypt_token
from app.delivery.models import Attempt
from app.programmes.export import to_csv, to_xlsx
from app.programmes.results import choose_attempt, programme_results
from app.programmes.service import (
    ProgrammeError,
    attach_session,
    create_programme,
    programme_by_code,
    programme_sessions,
)
from app.sessions.models import Participant, RosterEntry
from app.sessions.roster import RosterRow, import_roster
from tests.factories import make_open_session, sit
from tests.integration.test_demo_and_cli import cact

SECRET = "s" * 40
FIRST, SECOND = 100, 80  # people in day 1 and day 2; NIP 1 sits both
RETAKER = "198001012005011001"


@pytest.fixture
def programme(database, clock):
    """Day 1: 100 people, NIP ...001 answers nothing (not scoreable: the rule on the share
    answered is on, rapid guessing off for a frozen clock); day 2: 80 others and ...001 again."""
    with database.transaction() as db:
        day1, first = make_open_session(db, clock, secret=SECRET, participants=FIRST,
                                        code="HARI1", validity={"rapid_threshold_s": 0})
        clock.advance(86400)
        day2, second = make_open_session(db, clock, secret=SECRET, participants=SECOND,
                                         code="HARI2", first=FIRST + 1,
                                         validity={"rapid_threshold_s": 0})
        person = db.scalars(select(Participant).where(Participant.nip == RETAKER)).one()
        import_roster(db, session=day2, rows=[RosterRow(
            nip=person.nip, name=person.name, job_group="administrator", grade="",
            position="Kepala Bagian Umum", unit="Sekretariat Daerah")], secret=SECRET,
            actor="test", now=clock.now())
        made = create_programme(db, code="PEMETAAN-UJI", name="Pemetaan uji",
                                purpose="mapping", actor="admin", now=clock.now())
        for session in (day1, day2):
            attach_session(db, programme=made, session=session, actor="admin", now=clock.now())
        for nip, token in first:
            sit(db, clock, nip, token, secret=SECRET, answer=nip != RETAKER)
        retake_token = decrypt_token(SECRET, db.scalars(
            select(RosterEntry.token_encrypted).where(RosterEntry.session_id == day2.id,
                                                      RosterEntry.participant_id == person.id)
        ).one())
        for nip, token in [*second, (RETAKER, retake_token)]:
            sit(db, clock, nip, token, secret=SECRET)
    return "PEMETAAN-UJI"


def one_row_per_person_from_the_attempt_that_counts(programme, database):
    with database.transaction(write=False) as db:
        table = programme_results(db, programme_by_code(db, programme))
    assert len(table.rows) == FIRST + SECOND == 180
    assert len({r.nip for r in table.rows}) == 180
    retaker = next(r for r in table.rows if r.nip == RETAKER)
    assert len(retaker.candidates) == 2
    assert [c.status for c in retaker.candidates] == ["not_scoreable", "scored"]
    assert retaker.session_code == "HARI2" and retaker.chosen_by == "rule"
    assert retaker.status == "scored" and retaker.potensi_band
    # The job at the time of the retest (the day-2 roster), not the factory's pengawas.
    assert (retaker.job_group, retaker.position) == ("administrator", "Kepala Bagian Umum")
    assert table.by_status == {"scored": 180}
    assert sum(r.session_code == "HARI1" for r in table.rows) == FIRST - 1

    data = to_csv(table).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 180 and rows[0]["nip"] == RETAKER
    assert (rows[0]["session"], rows[0]["status"], rows[0]["attempts"]) == ("HARI2", "scored",
                                                                             "2")
    sheet = load_workbook(io.BytesIO(to_xlsx(table))).worksheets[0]
    assert sheet.max_row == 181 and sheet["A2"].value == RETAKER


def an_admin_chooses_another_attempt_with_a_reason(programme, database, clock):
    with database.transaction() as db:
        chosen = programme_by_code(db, programme)
        with pytest.raises(ProgrammeError) as refused:
            choose_attempt(db, programme=chosen, nip=RETAKER, attempt_id=None, reason=" ",
                           actor="admin", now=clock.now())
        assert refused.value.key == "reason"
        first = db.scalars(select(Attempt.id).join(RosterEntry).join(Participant).where(
            Participant.nip == RETAKER).order_by(Attempt.id)).first()
        other = db.scalars(select(Attempt.id).join(RosterEntry).join(Participant).where(
            Participant.nip != RETAKER)).first()
        with pytest.raises(ProgrammeError) as refused:
            choose_attempt(db, programme=chosen, nip=RETAKER, attempt_id=other,
                           reason="salah orang", actor="admin", now=clock.now())
        assert refused.value.key == "attempt_not_theirs"
        row = choose_attempt(db, programme=chosen, nip=RETAKER, attempt_id=first,
                             reason="Hari 2 terganggu listrik", actor="admin", now=clock.now())
        assert (row.session_code, row.chosen_by, row.status) == ("HARI1", "admin",
                                                                 "not_scoreable")
        assert row.jpm is None and row.category == "" and row.nine_box is None
        assert row.reasons and row.choice_reason == "Hari 2 terganggu listrik"
        back = choose_attempt(db, programme=chosen, nip=RETAKER, attempt_id=None,
                              reason="kembali ke aturan", actor="admin", now=clock.now())
        assert (back.session_code, back.chosen_by) == ("HARI2", "rule")
        events = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "programme.choose_attempt").order_by(AuditEvent.id)).all()
        assert [(e.data["before"], e.data["after"]) for e in events] == [
            (back.chosen.attempt.id, first), (first, None)]
        assert audit.verify(db).ok


def a_session_is_in_one_programme_only(programme, database, clock):
    with database.transaction() as db:
        other = create_programme(db, code="LAIN", name="Lain", purpose="position",
                                 actor="admin", now=clock.now())
        session = programme_by_code(db, programme)
        day1 = next(s for s in programme_sessions(db, session) if s.code == "HARI1")
        with pytest.raises(ProgrammeError) as refused:
            attach_session(db, programme=other, session=day1, actor="admin", now=clock.now())
        assert refused.value.key == "session_elsewhere"
        assert "PEMETAAN-UJI" in refused.value.text("id")


def test_the_programme_results_choices_and_membership(programme, database, clock):
    """One simulated programme for the three (180 people take a while): the rows, an admin's
    choice and back, and a session that cannot join a second programme."""
    one_row_per_person_from_the_attempt_that_counts(programme, database)
    an_admin_chooses_another_attempt_with_a_reason(programme, database, clock)
    a_session_is_in_one_programme_only(programme, database, clock)


def test_pages_and_cli(programme, admin, database, settings, tmp_path):
    page = admin.get(f"/admin/programmes/{programme}/results")
    assert page.status_code == 200
    assert page.text.count("<tr data-nip=") == 180
    assert "180 pegawai dari sesi HARI1, HARI2" in page.text
    only = admin.get(f"/admin/programmes/{programme}/results?job_group=administrator")
    assert only.text.count("<tr data-nip=") == 1  # the retaker, an administrator on day 2
    person = admin.get(f"/admin/programmes/{programme}/people/{RETAKER}")
    assert "Yang berlaku sekarang: percobaan di sesi HARI2" in person.text
    token = person.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    refused = admin.post(f"/admin/programmes/{programme}/people/{RETAKER}",
                         data={"csrf_token": token, "attempt": "rule", "reason": ""})
    assert refused.status_code == 422 and "Alasan wajib diisi" in refused.text
    sheet = admin.get(f"/admin/programmes/{programme}/results.csv")
    assert sheet.status_code == 200 and sheet.text.count("\n") == 181

    # Every report of the programme as one zip: the attempt that counts for each person.
    page = admin.get(f"/admin/programmes/{programme}")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    started = admin.post(f"/admin/programmes/{programme}/reports",
                         data={"csrf_token": token, "lang": "id"},
                         headers={"HX-Request": "true"})
    assert started.status_code == 200 and 'data-percent="' in started.text
    job = started.text.split(f"/admin/programmes/{programme}/reports/", 1)[1].split("/", 1)[0]
    for _ in range(200):
        step = admin.post(f"/admin/programmes/{programme}/reports/{job}/step",
                          data={"csrf_token": token}, headers={"HX-Request": "true"})
        assert step.status_code == 200
        if 'data-percent="100"' in step.text:
            break
    archive = admin.get(f"/admin/programmes/{programme}/reports/{job}.zip")
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert len(names) == 180 and any(RETAKER in n for n in names)
    # A session's route does not hand out a programme's job.
    assert admin.get(f"/admin/sessions/HARI1/reports/{job}.zip").status_code == 404

    env = {"CACT_SECRET_KEY": settings.resolved_secret()}
    out = tmp_path / "program.xlsx"
    done = cact(database.url, "programme", "results", programme, "--format", "xlsx", "--out",
                str(out), extra_env=env)
    assert done.returncode == 0, done.stderr
    assert load_workbook(out).worksheets[0].max_row == 181
    listed = cact(database.url, "programme", "list", extra_env=env)
    assert "PEMETAAN-UJI\tmapping\t2 sessions\t180 people" in listed.stdout
    made = cact(database.url, "programme", "create", "pengisian-2027", "--name",
                "Pengisian JPT 2027", "--purpose", "position", extra_env=env)
    assert made.returncode == 0 and "PENGISIAN-2027 created (position)" in made.stdout
    bad = cact(database.url, "programme", "create", "X", "--name", "n", extra_env=env)
    assert bad.returncode == 1 and "not valid" in bad.stderr + bad.stdout
    with database.transaction(write=False) as db:
        kinds = {e.action for e in db.scalars(select(AuditEvent))}
    assert {"programme.create", "programme.attach_session", "programme.export_results",
            "report.zip", "report.download"} <= kinds
