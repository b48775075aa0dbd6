"""Attempts the taker did not hand in: a proctor's force submit (with the reason the proctor
typed) or a session closed while they ran are "tidak dapat dinilai" unless the session turns
the rule off (``withhold_interrupted``); and the admin's second decision on such a result, a
retake in another session: refused without a reason, for a scoreable result, for a closed or
the same session; otherwise decided, audited, and the person is on the other roster with a
login token that works."""

from __future__ import annotations

import csv
import io
import random

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from app.audit import AuditEvent
from app.delivery import attempts
from app.delivery.models import Attempt
from app.proctoring.service import force_submit
from app.scoring.decisions import DecisionRefused, schedule_retake
from app.scoring.models import Result, ValidityDecision
from app.scoring.service import rescore_session
from app.scoring.validity import ValidityRules
from app.sessions import roster
from app.sessions.models import Participant, RosterEntry, SessionState, TestSession
from app.sessions.service import close_session
from tests.conftest import csrf_from
from tests.factories import UNTIMED, make_open_session


def start(app, database, nip: str, token: str, *, answer: bool, seed: int) -> int:
    """Log in through the taker API and start the attempt; with ``answer``, answer every item
    of every section (it is not handed in). Returns the attempt's id."""
    rng = random.Random(seed)
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": nip, "token": token, "workstation": f"PC-{seed}"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = client.get("/api/v1/taker/attempt").json()
    seq = 0
    for section in range(len(form["sections"]) if answer else 0):
        if section:
            assert client.post("/api/v1/taker/sections/next").status_code == 200
            form = client.get("/api/v1/taker/attempt").json()
        for item in form["items"]:
            if item["section"] != section:
                continue
            place = rng.randint(1, len(item["options"]))
            seq += 1
            saved = client.put(f"/api/v1/taker/answers/{item['item_id']}", json={
                "response": [place] if item["kind"] == "multiple" else place, "seq": seq})
            assert saved.status_code == 200 and saved.json()["accepted"], saved.text
    with database.transaction(write=False) as db:
        return db.scalars(select(Attempt.id).join(
            RosterEntry, RosterEntry.id == Attempt.roster_entry_id).join(
            Participant, Participant.id == RosterEntry.participant_id).where(
            Participant.nip == nip).order_by(Attempt.id.desc())).first()


def forced(database, clock, attempt_id: int, reason: str = "koneksi terputus") -> None:
    with database.transaction() as db:
        force_submit(db, attempt=db.get_one(Attempt, attempt_id), actor="user:pak.budi",
                     now=clock.now(), reason=reason)


def result_of(database, attempt_id: int) -> Result:
    with database.transaction(write=False) as db:
        return db.scalars(select(Result).where(Result.attempt_id == attempt_id)).one()


def rescore(database, clock, code: str = "S1") -> None:
    with database.transaction() as db:
        rescore_session(db, session=db.scalars(select(TestSession).where(
            TestSession.code == code)).one(), actor="t", now=clock.now())


def rules_of(result: Result) -> list[str]:
    return [r["rule"] for r in result.detail["validity"]["reasons"]]


def set_validity(database, code: str, rules: dict) -> None:
    with database.transaction() as db:
        db.scalars(select(TestSession).where(TestSession.code == code)).one().settings = {
            "validity": rules}


@pytest.fixture
def logins(database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=2, validity={})  # the real defaults
    return logins


def test_a_blank_force_submitted_attempt_is_not_scoreable_everywhere(
        app, admin, logins, database, clock):
    (blank, token), (careful, careful_token) = logins
    attempt_id = start(app, database, blank, token, answer=False, seed=1)
    clock.advance(60)
    forced(database, clock, attempt_id)
    first = result_of(database, attempt_id)
    # Scored inside the force submit, whose audit row already holds the proctor's text.
    assert rules_of(first) == ["few_answered", "few_answered", "forced"]
    assert first.detail["validity"]["reasons"][-1] == {"rule": "forced",
                                                       "note": "koneksi terputus"}
    assert first.potensi_band == "" and first.nine_box is None and first.jpm is None
    assert first.detail["validity"]["submit_reason"] == "forced"

    rescore(database, clock)  # the session's close or a rescore: the same reasons
    result = result_of(database, attempt_id)
    check = result.detail["validity"]
    assert check["scoreable"] is False and check["answered"] == 0
    assert check["reasons"][-1] == {"rule": "forced", "note": "koneksi terputus"}
    assert check["rules"]["withhold_interrupted"] is True
    assert result.total_score is not None and result.detail["potensi_score"] is not None
    assert result.potensi_band == "" and result.category == "" and result.nine_box is None

    page = admin.get("/admin/sessions/S1/results").text
    assert page.count('data-testid="not-scoreable"') == 1
    assert "Bagian 1: 0 dari 3 soal dijawab" in page
    assert "Diserahkan paksa oleh pengawas: koneksi terputus" in page

    rows = {r["nip"]: r for r in csv.DictReader(io.StringIO(
        admin.get("/admin/sessions/S1/results.csv").content.decode("utf-8-sig")))}
    assert rows[blank]["status"] == "not_scoreable" and rows[blank]["scoreable"] == "no"
    assert rows[blank]["attempt_state"] == "submitted"
    assert rows[blank]["not_scoreable_reasons"] == (
        "Bagian 1: 0 dari 3 soal dijawab; Bagian 2: 0 dari 2 soal dijawab; "
        "Diserahkan paksa oleh pengawas: koneksi terputus")
    assert rows[careful]["status"] == "absent" and rows[careful]["attempt_state"] == "absent"
    sheet = load_workbook(io.BytesIO(admin.get("/admin/sessions/S1/results.xlsx").content))
    header, *values = list(sheet["Hasil"].iter_rows(values_only=True))
    by_nip = {row[0]: dict(zip(header, row, strict=True)) for row in values}
    assert by_nip[blank]["status"] == "not_scoreable"

    report = admin.get(f"/admin/sessions/S1/results/{blank}").text
    assert 'data-testid="report-not-scoreable"' in report
    assert "Diserahkan paksa oleh pengawas: koneksi terputus" in report
    assert 'data-testid="accept-form"' in report and 'data-testid="retake-form"' not in report
    assert 'data-testid="retake-no-target"' in report  # no other session yet
    english = admin.get(f"/admin/sessions/S1/results/{blank}?lang=en")
    assert english.status_code == 200
    pdf = admin.get(f"/admin/sessions/S1/results/{blank}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    talent = admin.get("/admin/sessions/S1/talent-map").text
    placed, unplaced = talent.split('data-testid="unplaced"', 1)
    assert blank not in placed and blank in unplaced


def test_the_setting_off_scores_a_force_submitted_attempt(app, logins, database, clock):
    set_validity(database, "S1", dict(UNTIMED))  # answers in one instant: no time rules
    (nip, token), _ = logins
    attempt_id = start(app, database, nip, token, answer=True, seed=2)
    forced(database, clock, attempt_id, reason="peserta sakit")
    rescore(database, clock)
    withheld = result_of(database, attempt_id)
    assert withheld.detail["validity"]["reasons"] == [{"rule": "forced", "note": "peserta sakit"}]
    assert withheld.potensi_band == ""

    set_validity(database, "S1", {**UNTIMED, "withhold_interrupted": False})
    rescore(database, clock)
    scored = result_of(database, attempt_id)
    assert scored.detail["validity"]["scoreable"] is True and scored.potensi_band
    assert scored.detail["validity"]["rules"]["withhold_interrupted"] is False

    for bad in ("no", 0, None):
        with pytest.raises(ValueError, match="withhold_interrupted"):
            ValidityRules.from_settings({"validity": {"withhold_interrupted": bad}})


def test_an_attempt_running_when_the_session_closed_is_not_scoreable(
        app, admin, logins, database, clock):
    set_validity(database, "S1", dict(UNTIMED))
    (nip, token), (other, other_token) = logins
    attempt_id = start(app, database, nip, token, answer=True, seed=3)
    other_id = start(app, database, other, other_token, answer=True, seed=4)
    with database.transaction() as db:
        close_session(db, session=db.scalars(select(TestSession)).one(), actor="user:admin",
                      now=clock.now())
    result = result_of(database, attempt_id)
    assert rules_of(result) == ["closed_unfinished"] and result.potensi_band == ""
    rows = {r["nip"]: r for r in csv.DictReader(io.StringIO(
        admin.get("/admin/sessions/S1/results.csv").content.decode("utf-8-sig")))}
    assert rows[nip]["status"] == "not_scoreable"
    assert rows[nip]["not_scoreable_reasons"] == "Masih berjalan saat sesi ditutup"

    set_validity(database, "S1", {**UNTIMED, "withhold_interrupted": False})
    rescore(database, clock)
    for attempt in (attempt_id, other_id):
        assert result_of(database, attempt).detail["validity"]["scoreable"] is True
        assert result_of(database, attempt).potensi_band


def test_a_retake_in_another_session(app, admin, logins, database, settings, clock):
    secret = settings.resolved_secret()
    with database.transaction() as db:
        make_open_session(db, clock, secret=secret, participants=1, code="S2", first=20)
        closed, _ = make_open_session(db, clock, secret=secret, participants=1, code="S3",
                                      first=30)
        closed.state = SessionState.closed
    (blank, token), (careful, careful_token) = logins
    blank_attempt = start(app, database, blank, token, answer=False, seed=5)
    forced(database, clock, blank_attempt)
    set_validity(database, "S1", {**UNTIMED, "withhold_interrupted": False})
    careful_attempt = start(app, database, careful, careful_token, answer=True, seed=6)
    forced(database, clock, careful_attempt, reason="selesai, lupa menyerahkan")
    set_validity(database, "S1", {})  # the blank one stays not scoreable (few answered)
    assert result_of(database, careful_attempt).detail["validity"]["scoreable"] is True

    page = f"/admin/sessions/S1/results/{blank}"
    shown = admin.get(page).text
    assert 'data-testid="retake-form"' in shown
    assert '<option value="S2">' in shown and 'value="S3"' not in shown
    assert '<option value="S1">' not in shown
    csrf = csrf_from(shown)

    def post(nip: str, target: str, reason: str):
        return admin.post(f"/admin/sessions/S1/results/{nip}/retake", follow_redirects=False,
                          data={"csrf_token": csrf, "target": target, "reason": reason})

    refused = post(blank, "S2", "  ")
    assert refused.status_code == 422 and "Tuliskan alasan ujian ulang" in refused.text
    assert 'data-testid="retake-error"' in refused.text
    scoreable = post(careful, "S2", "x")
    assert scoreable.status_code == 422 and "dapat dinilai; tidak ada" in scoreable.text
    assert "sudah ditutup" in post(blank, "S3", "x").text
    assert "di sesi yang sama (S1)" in post(blank, "S1", "x").text
    assert "Pilih sesi" in post(blank, "NOPE", "x").text
    class Undo(Exception):
        pass

    with pytest.raises(Undo), database.transaction() as db:
        assert db.scalars(select(ValidityDecision)).all() == []
        person = db.scalars(select(Participant).where(Participant.nip == blank)).one()
        source, target = (db.scalars(select(TestSession).where(TestSession.code == c)).one()
                          for c in ("S1", "S2"))
        # Already on the target's roster: refused (the service, with nothing written).
        db.add(RosterEntry(session_id=target.id, participant_id=person.id, token_hmac="x",
                           token_encrypted=b"x"))
        db.flush()
        with pytest.raises(DecisionRefused) as on_roster:
            schedule_retake(db, session=source, nip=blank, target_session=target,
                            reason="x", actor="t", now=clock.now(),
                            enrol=lambda *_: pytest.fail("not enrolled"))
        assert on_roster.value.key == "validity.error_retake_on_roster"
        raise Undo  # the entry added for this check goes with the transaction

    done = post(blank, "S2", "PC 7 mati, ujian ulang")
    assert done.status_code == 303 and done.headers["location"] == page
    result = result_of(database, blank_attempt)
    check = result.detail["validity"]
    assert check["scoreable"] is False and "accepted" not in check
    assert check["retake"]["session"] == "S2" and check["retake"]["by"] == "user:admin"
    assert result.potensi_band == "" and result.nine_box is None  # still withheld
    shown = admin.get(page).text
    assert 'data-testid="report-retake"' in shown and "Dijadwalkan ujian ulang di sesi S2" in shown
    assert 'data-testid="retake-form"' not in shown and 'data-testid="accept-form"' not in shown
    assert "sudah dijadwalkan" in post(blank, "S2", "lagi").text
    again = admin.post(f"{page}/accept", data={"csrf_token": csrf, "reason": "tetap"})
    assert again.status_code == 422 and "sudah dijadwalkan" in again.text

    with database.transaction() as db:
        decision = db.get_one(ValidityDecision, blank_attempt)
        assert (decision.decision, decision.reason) == ("retake", "PC 7 mati, ujian ulang")
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "result.retake")).one()
        assert event.actor == "user:admin" and event.reason == "PC 7 mati, ujian ulang"
        assert event.target == f"attempt:{blank_attempt}"
        assert event.data["to"] == "S2" and event.data["session"] == "S1"
        assert [r["rule"] for r in event.data["reasons"]] == [
            "few_answered", "few_answered", "forced"]
        target = db.scalars(select(TestSession).where(TestSession.code == "S2")).one()
        [card] = roster.tokens_for_session(db, session=target, secret=secret, nip=blank)
        login = attempts.login(db, nip=blank, token=card.token, workstation="PC-9",
                               client_addr="10.0.0.9", secret=secret, now=clock.now())
        assert login.session.code == "S2" and login.attempt.session_id == target.id
    rows = {r["nip"]: r for r in csv.DictReader(io.StringIO(
        admin.get("/admin/sessions/S1/results.csv").content.decode("utf-8-sig")))}
    assert rows[blank]["status"] == "retake" and rows[careful]["status"] == "scored"
    # A rescore keeps the decision and its target.
    rescore(database, clock)
    assert result_of(database, blank_attempt).detail["validity"]["retake"]["session"] == "S2"


def test_cact_results_retake(app, logins, database, settings, clock):
    from tests.integration.test_demo_and_cli import cact

    with database.transaction() as db:
        make_open_session(db, clock, secret=settings.resolved_secret(), participants=1,
                          code="S2", first=20)
    (blank, token), _ = logins
    attempt_id = start(app, database, blank, token, answer=False, seed=7)
    forced(database, clock, attempt_id)
    key = {"CACT_SECRET_KEY": settings.resolved_secret()}
    no_reason = cact(database.url, "results", "retake", "S1", blank, "--to", "S2",
                     "--reason", " ", extra_env=key)
    assert no_reason.returncode == 1 and "not scheduled" in no_reason.stderr
    same = cact(database.url, "results", "retake", "S1", blank, "--to", "S1", "--reason", "x",
                extra_env=key)
    assert same.returncode == 1 and "sesi yang sama" in same.stderr
    done = cact(database.url, "results", "retake", "S1", blank, "--to", "S2",
                "--reason", "sakit, diuji ulang", extra_env=key)
    assert done.returncode == 0 and "retake scheduled in session S2" in done.stdout, done.stderr
    with database.transaction(write=False) as db:
        assert db.get_one(ValidityDecision, attempt_id).decision == "retake"
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "result.retake")).one()
        assert event.actor == "cli" and event.data["to"] == "S2"
        target = db.scalars(select(TestSession).where(TestSession.code == "S2")).one()
        assert roster.tokens_for_session(db, session=target, secret=settings.resolved_secret(),
                                         nip=blank)
