"""The admin's results page over HTTP (SQLite and PostgreSQL): who may see it, server-side
sorting, the audited rescore button with CSRF, the CSV/XLSX downloads; and one whole small
session taken through the taker API whose export is compared with hand-computed values (the
scenario is described in test_scoring_service.py)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app import audit
from app.delivery.models import AttemptItem
from app.main import score_pending_now
from app.scoring.models import Result
from app.sessions.models import SessionState, TestSession
from tests.conftest import csrf_from, log_in_admin, staff_login
from tests.integration.test_scoring_service import ANSWERS_1, build_session, option_ids
from tests.integration.test_web import csp_problems


def as_shown(db, attempt_id, wanted):
    """Real option ids -> what the taker's form calls them: their places in its order (1..n)."""
    orders = dict(db.execute(select(AttemptItem.item_id, AttemptItem.option_order)
                             .where(AttemptItem.attempt_id == attempt_id)).all())

    def place(item_id, option):
        return orders[item_id].index(option) + 1
    return {item_id: [place(item_id, o) for o in value] if isinstance(value, list)
            else place(item_id, value) for item_id, value in wanted.items() if item_id in orders}


def api_take(app, nip, token, answers, database):
    """A taker's whole attempt through /api/v1/taker: login, form, saves, next, submit."""
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": nip, "token": token, "workstation": f"PC-{nip[-3:]}"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = client.get("/api/v1/taker/attempt").json()
    with database.transaction(write=False) as db:
        wanted = as_shown(db, login.json()["attempt_id"], option_ids(db, answers))
    by_section: dict[int, list[dict]] = {}
    for item in form["items"]:
        by_section.setdefault(item["section"], []).append(item)
    seq = 0
    for section in sorted(by_section):
        if section > 0:
            assert client.post("/api/v1/taker/sections/next").status_code == 200
        for item in by_section[section]:
            if item["item_id"] in wanted:
                seq += 1
                saved = client.put(f"/api/v1/taker/answers/{item['item_id']}",
                                   json={"response": wanted[item["item_id"]], "seq": seq})
                assert saved.status_code == 200 and saved.json()["accepted"], saved.text
    done = client.post("/api/v1/taker/submit")
    assert done.status_code == 200 and done.json()["state"] == "submitted"
    score_pending_now(app)  # what the sweeper does seconds after a hand-in


@pytest.fixture
def taken(app, settings, database, clock):
    """Session S1 with three participants: 1 (administrator) answers ANSWERS_1, 2 hands in a
    blank test, 3 never logs in."""
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=3, secret=settings.resolved_secret())
    api_take(app, *logins[0], ANSWERS_1, database)
    api_take(app, *logins[1], {}, database)
    return logins


def test_whole_session_through_the_taker_api_exports_the_expected_values(
        client, make_user, taken, database):
    logins = taken
    log_in_admin(client, make_user)
    response = client.get("/admin/sessions/S1/results.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    assert 'filename="hasil-S1.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["nip"] for r in rows] == [nip for nip, _ in logins]
    one, two, three = rows
    assert (one["total_score"], one["jpm"], one["category"], one["potensi_band"],
            one["potensi_score"], one["combined_jpm"]) == \
        ("24.5", "83.33", "Cukup Optimal", "Menengah", "74.44", "79.78")
    assert (one["kompetensi.integritas.level"], one["kompetensi.kerjasama.level"],
            one["potensi.numerik.level"], one["potensi.verbal.raw"]) == ("4", "1", "2", "1.5")
    assert (two["total_score"], two["jpm"], two["category"], two["potensi_band"]) == \
        ("0", "50", "Kurang Optimal", "Rendah")
    assert three["status"] == "absent" and three["total_score"] == "" and three["jpm"] == ""
    with database.transaction(write=False) as db:
        assert len(db.scalars(select(Result)).all()) == 2
        assert db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "results.export")).one().actor == "user:admin"


def test_admin_sees_the_sortable_results_page(client, make_user, taken):
    logins = taken
    log_in_admin(client, make_user)
    page = client.get("/admin/sessions/s1/results")
    assert page.status_code == 200 and "<html" in page.text
    assert csp_problems(page.text) == []
    assert "Hasil sesi S1" in page.text and "Hitung ulang" in page.text
    assert "2 dari 3 peserta sudah memiliki hasil" in page.text
    assert "Cukup Optimal" in page.text and "83,33" in page.text  # the decimal comma
    # The compact view leaves the constructs to "all columns" (construct names, not codes).
    assert "Integritas" not in page.text
    assert "Integritas" in client.get("/admin/sessions/S1/results?view=all").text
    assert "tidak hadir" in page.text  # participant 3
    order = [line.split('"')[1] for line in page.text.splitlines() if 'data-nip="' in line]
    assert order == [nip for nip, _ in logins]  # NIP order by default
    by_jpm = client.get("/admin/sessions/S1/results?sort=jpm&dir=desc").text
    order = [line.split('"')[1] for line in by_jpm.splitlines() if 'data-nip="' in line]
    assert order == [logins[0][0], logins[1][0], logins[2][0]]  # 83.33, 50, none last
    by_jpm_up = client.get("/admin/sessions/S1/results?sort=jpm&dir=asc").text
    order = [line.split('"')[1] for line in by_jpm_up.splitlines() if 'data-nip="' in line]
    assert order == [logins[1][0], logins[0][0], logins[2][0]]
    assert 'aria-sort="ascending"' in by_jpm_up
    assert client.get("/admin/sessions/S1/results?sort=evil';--").status_code == 200
    fragment = client.get("/admin/sessions/S1/results", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "results-table" in fragment.text
    assert client.get("/admin/sessions/NOPE/results").status_code == 404
    client.cookies.set("cact_lang", "en")
    english = client.get("/admin/sessions/S1/results").text
    assert "Results of session S1" in english and "absent" in english
    client.cookies.delete("cact_lang")
    session_page = client.get("/admin/sessions/S1").text
    assert 'href="/admin/sessions/S1/results"' in session_page


def test_proctor_and_anonymous_are_refused(client, make_user, taken):
    for path in ("/admin/sessions/S1/results", "/admin/sessions/S1/results.csv",
                 "/admin/sessions/S1/results.xlsx"):
        anonymous = client.get(path, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(
            "/login"), path
    staff_login(client, "pak.budi", make_user("pak.budi", role="proctor"))
    for path in ("/admin/sessions/S1/results", "/admin/sessions/S1/results.csv",
                 "/admin/sessions/S1/results.xlsx"):
        assert client.get(path, follow_redirects=False).status_code == 403, path
    token = csrf_from(client.get("/proctor").text)
    refused = client.post("/admin/sessions/S1/results/rescore", data={"csrf_token": token},
                          follow_redirects=False)
    assert refused.status_code == 403


def test_rescore_button_needs_csrf_and_is_audited(client, make_user, taken, database):
    log_in_admin(client, make_user)
    page = client.get("/admin/sessions/S1/results")
    without = client.post("/admin/sessions/S1/results/rescore", data={"reason": "x"},
                          follow_redirects=False)
    assert without.status_code == 403
    done = client.post("/admin/sessions/S1/results/rescore",
                       data={"csrf_token": csrf_from(page.text), "reason": "cek ulang"},
                       follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == ("/admin/sessions/S1/results?rescored=2&changed=0"
                                         "&unchanged=2&new=0&fields=")
    shown = client.get(done.headers["location"])
    assert "Sudah mutakhir: 2 hasil diperiksa, tidak ada yang berubah." in shown.text
    with database.transaction(write=False) as db:
        event = db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "results.rescore")).one()
        assert (event.actor, event.reason, event.target) == ("user:admin", "cek ulang",
                                                             "session:S1")
        assert (event.data["rescored"], event.data["changed"], event.data["unchanged"]) == \
            (2, 0, 2)
    # A result stored with the combined JPM of the rounded parts (79.77, as before it was
    # computed from the unrounded ones): the rescore says which result changed and in what.
    with database.transaction() as db:
        stored = db.scalars(select(Result).order_by(Result.id)).first()
        stored.detail = {**stored.detail, "combined_jpm": "79.77"}
    fixed = client.post("/admin/sessions/S1/results/rescore",
                        data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert fixed.headers["location"].endswith(
        "?rescored=2&changed=1&unchanged=1&new=0&fields=combined_jpm%3A1")
    shown = client.get(fixed.headers["location"])
    assert ("2 hasil dihitung ulang: 1 berubah, 1 tetap. Yang berubah: JPM gabungan 1."
            in shown.text)
    with database.transaction(write=False) as db:
        assert db.scalars(select(Result).order_by(Result.id)).first().detail[
            "combined_jpm"] == "79.78"
        last = db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "results.rescore").order_by(audit.AuditEvent.id.desc())
        ).first()
        assert (last.data["changed"], last.data["fields"]) == (1, {"combined_jpm": 1})
    # a broken setting is shown on the page, nothing is written
    with database.transaction() as db:
        db.scalar(select(TestSession)).settings = {"scoring": {"purpose": "promosi"}}
    bad = client.post("/admin/sessions/S1/results/rescore",
                      data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert bad.status_code == 422 and "tidak valid" in bad.text


def test_xlsx_download(client, make_user, taken):
    from openpyxl import load_workbook

    logins = taken
    log_in_admin(client, make_user)
    response = client.get("/admin/sessions/S1/results.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml")
    book = load_workbook(io.BytesIO(response.content))
    results = list(book["Hasil"].iter_rows(values_only=True))
    assert [r[0] for r in results[1:]] == [nip for nip, _ in logins]
    header = results[0]
    assert results[1][header.index("category")] == "Cukup Optimal"
    responses = list(book["Jawaban"].iter_rows(values_only=True))
    assert len(responses) == 1 + 2 * 9  # two handed-in attempts of nine items


def test_closing_the_session_over_http_scores_the_running_attempts(
        app, client, make_user, settings, database, clock):
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=2, code="S2",
                                  secret=settings.resolved_secret())
    taker = TestClient(app)
    login = taker.post("/api/v1/taker/login", json={"nip": logins[0][0], "token": logins[0][1],
                                                    "workstation": "PC-1"})
    taker.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = taker.get("/api/v1/taker/attempt").json()
    with database.transaction(write=False) as db:
        wanted = as_shown(db, login.json()["attempt_id"], option_ids(db, {"NUM-1": "B"}))
    item = next(i for i in form["items"] if i["item_id"] in wanted)
    assert taker.put(f"/api/v1/taker/answers/{item['item_id']}",
                     json={"response": wanted[item["item_id"]], "seq": 1}).status_code == 200
    log_in_admin(client, make_user)
    page = client.get("/admin/sessions/S2")
    closed = client.post("/admin/sessions/S2/state", data={
        "action": "close", "csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert closed.status_code == 303
    with database.transaction(write=False) as db:
        assert db.scalar(select(TestSession)).state == SessionState.closed
        results = db.scalars(select(Result)).all()
    assert [r.total_score for r in results] == [5]
