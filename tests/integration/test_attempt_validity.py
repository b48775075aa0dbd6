"""Attempts that cannot be trusted, through the taker API with the server's clock: a random
responder (an answer every 1-2 s) and an attempt with no answers are not scoreable (scores kept,
no JPM, category or box); a careful responder (20-60 s an item) is scored as usual."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.delivery.models import Attempt
from app.scoring.models import Result
from app.scoring.service import score_pending
from app.sessions.models import Participant, RosterEntry
from tests.factories import make_open_session


@pytest.fixture
def logins(database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=3, validity={})  # the real defaults
    return logins


def sit(app, clock, nip, token, *, seconds: tuple[float, float] | None, seed: int):
    """Log in, and answer every item with a random option after a think time drawn from
    ``seconds`` (None: answer nothing), section by section, then hand in."""
    rng = random.Random(seed)
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": nip, "token": token, "workstation": f"PC-{seed}"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = client.get("/api/v1/taker/attempt").json()
    seq = 0
    for section in range(len(form["sections"])):
        if section:
            assert client.post("/api/v1/taker/sections/next").status_code == 200
            form = client.get("/api/v1/taker/attempt").json()
        for item in form["items"]:
            if item["section"] != section or seconds is None:
                continue
            clock.advance(rng.uniform(*seconds))
            place = rng.randint(1, len(item["options"]))
            seq += 1
            saved = client.put(f"/api/v1/taker/answers/{item['item_id']}", json={
                "response": [place] if item["kind"] == "multiple" else place, "seq": seq})
            assert saved.status_code == 200 and saved.json()["accepted"], saved.text
    clock.advance(5)
    assert client.post("/api/v1/taker/submit").status_code == 200


def result_of(database, nip) -> Result:
    with database.transaction(write=False) as db:
        return db.scalars(select(Result).join(Attempt, Attempt.id == Result.attempt_id)
                          .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                          .join(Participant, Participant.id == RosterEntry.participant_id)
                          .where(Participant.nip == nip)).one()


def test_random_zero_and_careful_responders(app, client, logins, database, clock):
    (careful, _), (rapid, _), (blank, _) = logins
    sit(app, clock, *logins[0], seconds=(20, 60), seed=1)
    sit(app, clock, *logins[1], seconds=(1, 2), seed=2)
    sit(app, clock, *logins[2], seconds=None, seed=3)
    with database.transaction() as db:
        assert score_pending(db, now=clock.now()) == 3

    good = result_of(database, careful)
    assert good.detail["validity"]["scoreable"] is True
    assert good.detail["validity"]["reasons"] == []
    assert good.detail["validity"]["rte"] == "1.0000"
    # The test bank is potensi only: a band, no JPM (that needs kompetensi items).
    assert good.potensi_band and good.detail["potensi_score"] is not None

    guessed = result_of(database, rapid)
    check = guessed.detail["validity"]
    assert check["scoreable"] is False and check["rte"] == "0.0000"
    assert [r["rule"] for r in check["reasons"]] == ["rapid_guessing"]
    assert check["rapid"] == check["timed"] == check["answered"] == check["administered"]
    # Scores are kept for the record; the judgements made from the levels are not.
    assert guessed.potensi_band == "" and guessed.jpm is None and guessed.category == ""
    assert guessed.nine_box is None and guessed.detail["combined_jpm"] is None
    assert guessed.detail["aspects"] and guessed.detail["potensi_score"] is not None

    nothing = result_of(database, blank)
    check = nothing.detail["validity"]
    assert check["scoreable"] is False and check["answered"] == 0
    assert {r["rule"] for r in check["reasons"]} == {"few_answered"}
    assert [r["section"] for r in check["reasons"]] == [1, 2]
    assert nothing.potensi_band == "" and nothing.nine_box is None


def test_pages_and_export_say_not_scoreable_and_why(app, admin, logins, database, clock):
    import csv
    import io

    sit(app, clock, *logins[0], seconds=(20, 60), seed=1)
    sit(app, clock, *logins[1], seconds=(1, 2), seed=2)
    with database.transaction() as db:
        score_pending(db, now=clock.now())
    (careful, _), (rapid, _), _ = logins

    page = admin.get("/admin/sessions/S1/results").text
    badges = page.count('data-testid="not-scoreable"')
    assert badges == 1 and "Tidak dapat dinilai" in page and "Menebak cepat: 5 dari 5" in page
    report = admin.get(f"/admin/sessions/S1/results/{rapid}").text
    assert 'data-testid="report-not-scoreable"' in report and "upaya 0%" in report
    assert '<dd data-testid="report-category">Tidak dapat dinilai</dd>' in report
    pdf = admin.get(f"/admin/sessions/S1/results/{rapid}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert 'data-testid="report-not-scoreable"' not in admin.get(
        f"/admin/sessions/S1/results/{careful}").text

    rows = {r["nip"]: r for r in csv.DictReader(io.StringIO(
        admin.get("/admin/sessions/S1/results.csv").content.decode("utf-8-sig")))}
    assert rows[careful]["scoreable"] == "yes" and rows[careful]["not_scoreable_reasons"] == ""
    assert rows[careful]["rte"] == "1" and rows[careful]["rapid_guesses"] == "0"
    assert rows[rapid]["scoreable"] == "no" and rows[rapid]["rte"] == "0"
    assert rows[rapid]["not_scoreable_reasons"].startswith("Menebak cepat: 5 dari 5")
    assert rows[rapid]["potensi_band"] == "" and rows[rapid]["total_score"] != ""
    assert int(rows[rapid]["time_used_s"]) < int(rows[careful]["time_used_s"])

    # Item statistics and reliability leave the untrusted attempt out, and say so.
    from app.analysis.service import item_analysis
    from app.bank.models import BankVersion

    with database.transaction(write=False) as db:
        version_id = db.scalars(select(BankVersion.id)).one()
        analysis = item_analysis(db, bank_version_id=version_id)
    assert (analysis.attempts, analysis.not_scoreable) == (1, 1)
    page = admin.get(f"/admin/analysis/{version_id}").text
    assert "1 tes yang tidak dapat dinilai tidak ikut dihitung" in page


def test_the_thresholds_are_per_session_settings(app, client, logins, database, clock):
    from app.sessions.models import TestSession

    with database.transaction() as db:
        session = db.scalars(select(TestSession)).one()
        session.settings = {"validity": {"rapid_threshold_s": 0.5}}  # and the rest default
    sit(app, clock, *logins[1], seconds=(1, 2), seed=2)
    with database.transaction() as db:
        score_pending(db, now=clock.now())
    result = result_of(database, logins[1][0])
    assert result.detail["validity"]["scoreable"] is True
    assert result.detail["validity"]["rules"]["rapid_threshold_s"] == "0.5"
    assert result.potensi_band


def test_an_admin_accepts_a_result_with_a_reason(app, admin, logins, database, clock, settings):
    from app.analysis.service import item_analysis
    from app.audit import AuditEvent
    from app.bank.models import BankVersion
    from tests.conftest import csrf_from
    from tests.integration.test_demo_and_cli import cact

    sit(app, clock, *logins[0], seconds=(20, 60), seed=1)
    sit(app, clock, *logins[1], seconds=(1, 2), seed=2)
    sit(app, clock, *logins[2], seconds=None, seed=3)
    with database.transaction() as db:
        score_pending(db, now=clock.now())
    (careful, _), (rapid, _), (blank, _) = logins
    page = f"/admin/sessions/S1/results/{rapid}"
    token = csrf_from(admin.get(page).text)

    refused = admin.post(f"{page}/accept", data={"csrf_token": token, "reason": "  "})
    assert refused.status_code == 422 and "Tuliskan alasan" in refused.text
    assert result_of(database, rapid).potensi_band == ""
    scoreable = admin.post(f"/admin/sessions/S1/results/{careful}/accept",
                           data={"csrf_token": token, "reason": "x"})
    assert scoreable.status_code == 422 and "dapat dinilai; tidak ada" in scoreable.text

    done = admin.post(f"{page}/accept", follow_redirects=False,
                      data={"csrf_token": token, "reason": "PC 7 macet, dijawab ulang cepat"})
    assert done.status_code == 303 and done.headers["location"] == page
    accepted = result_of(database, rapid)
    assert accepted.potensi_band and accepted.detail["validity"]["scoreable"] is False
    assert accepted.detail["validity"]["accepted"]["reason"] == "PC 7 macet, dijawab ulang cepat"
    shown = admin.get(page).text
    assert 'data-testid="report-accepted"' in shown and 'data-testid="accept-form"' not in shown
    again = admin.post(f"{page}/accept", data={"csrf_token": token, "reason": "lagi"})
    assert again.status_code == 422 and "sudah diterima" in again.text
    with database.transaction(write=False) as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "result.accept_not_scoreable")).one()
        assert event.actor == "user:admin" and event.reason.startswith("PC 7")
        assert [r["rule"] for r in event.data["reasons"]] == ["rapid_guessing"]
        # Accepted answers count in the item statistics again; the blank one still does not.
        analysis = item_analysis(db, bank_version_id=db.scalars(select(BankVersion.id)).one())
    assert (analysis.attempts, analysis.not_scoreable) == (2, 1)
    # A rescore keeps the decision (it is stored, not a flag on the result).
    with database.transaction() as db:
        from app.scoring.service import rescore_session
        from app.sessions.models import TestSession

        rescore_session(db, session=db.scalars(select(TestSession)).one(), actor="t",
                        now=clock.now())
    assert result_of(database, rapid).potensi_band

    # The same from the command line, for the participant who answered nothing.
    key = {"CACT_SECRET_KEY": settings.resolved_secret()}  # the server's, which it checks
    no_reason = cact(database.url, "results", "accept", "S1", blank, "--reason", " ",
                     extra_env=key)
    assert no_reason.returncode == 1 and "not accepted" in no_reason.stderr
    cli = cact(database.url, "results", "accept", "S1", blank, "--reason", "sakit, diuji ulang",
               extra_env=key)
    assert cli.returncode == 0 and "accepted" in cli.stdout, cli.stderr
    assert result_of(database, blank).potensi_band
