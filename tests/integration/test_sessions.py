"""Test sessions: scheduling freezes the banks, the state machine refuses what it must, closing
hands in running attempts, proctor assignments; and the admin pages for all of it, over real
HTTP on SQLite and PostgreSQL (CSRF on every form, proctors refused, token pages audited)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.assembly.service import import_blueprint
from app.audit import AuditEvent
from app.auth.models import User
from app.bank.models import BankVersion
from app.delivery import attempts, timing
from app.delivery.models import Attempt, AttemptState
from app.sessions import roster
from app.sessions.models import ProctorAssignment, RosterEntry, SessionState, TestSession
from app.sessions.service import (
    SessionError,
    allowed_actions,
    assign_proctor,
    change_state,
    create_session,
    unassign_proctor,
)
from tests.conftest import csrf_from, staff_login
from tests.factories import BLUEPRINT, bank_zip, run_import
from tests.integration.test_web import csp_problems

SECRET = "t" * 40
ROSTER = ("nip;nama;kelompok_jabatan;jenjang;jabatan;unit_kerja\n"
          "198001012005011001;Siti Rahma;pengawas;;Kepala Subbagian;BKD\n"
          "198202022006042002;Budi Santoso;fungsional;Ahli Muda;Analis;Dinas Kesehatan\n")


def with_blueprint(db, clock):
    run_import(db, clock, "uji.zip", bank_zip())
    import_blueprint(db, BLUEPRINT, source="bp.yaml", actor="t", now=clock.now())


def schedule(db, clock, code="S1", **changes):
    values = {"code": code, "name": "Sesi uji", "room": "Lab 1", "blueprint_code": "UJI-BP",
              "starts_at": clock.now(), "ends_at": clock.now() + timedelta(hours=4),
              "actor": "test", "now": clock.now()}
    return create_session(db, **{**values, **changes})


def user(db, username, role="proctor", active=True):
    account = User(username=username, role=role, password_hash="x", is_active=active,
                   created_at=datetime.now(UTC))
    db.add(account)
    db.flush()
    return account


def test_creating_a_session_freezes_its_bank_versions(db, clock):
    with_blueprint(db, clock)
    assert db.scalars(select(BankVersion.frozen)).all() == [False]
    user(db, "pak.budi")
    session = schedule(db, clock, code="cact-01", proctor_usernames=["Pak.Budi"])
    assert session.code == "CACT-01" and session.state == SessionState.scheduled
    assert db.scalars(select(BankVersion.frozen)).all() == [True]
    assert db.scalar(select(func.count()).select_from(ProctorAssignment)) == 1
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "session.create"))
    assert event.target == "session:CACT-01" and event.data["proctors"] == ["pak.budi"]
    assert event.data["blueprint"] == "UJI-BP" and event.data["frozen_bank_versions"]


@pytest.mark.parametrize(("changes", "key", "english"), [
    ({"code": "X"}, "code_invalid", "2-32 characters"),
    ({"code": "BAD CODE"}, "code_invalid", "2-32 characters"),
    ({"code": "-S1"}, "code_invalid", "starting with a letter or digit"),
    ({"code": "S1"}, "code_taken", "already exists; choose another code"),
    ({"blueprint_code": "NONE"}, "blueprint_missing", "import it first"),
    ({"ends_at": datetime(2000, 1, 1, tzinfo=UTC)}, "window", "must end after it starts"),
    ({"proctor_usernames": ["nobody"]}, "proctor_unknown", "create it first"),
    ({"proctor_usernames": ["bu.ani"]}, "proctor_inactive", "enable it first"),
    ({"name": "n" * 201}, "name_too_long", "shorten it"),
])
def test_bad_session_input_is_refused_with_a_fix(db, clock, changes, key, english):
    with_blueprint(db, clock)
    user(db, "bu.ani", active=False)
    schedule(db, clock, code="S1")
    with pytest.raises(SessionError) as refused:
        schedule(db, clock, **{"code": "S2", **changes})
    assert refused.value.key == key and english in str(refused.value)
    assert refused.value.text("id") != str(refused.value)  # Indonesian for the admin page
    assert db.scalar(select(func.count()).select_from(TestSession)) == 1


def test_state_machine_allows_only_legal_changes(db, clock):
    with_blueprint(db, clock)
    session = schedule(db, clock)

    def refused(action):
        with pytest.raises(SessionError) as error:
            change_state(db, session=session, action=action, actor="test", now=clock.now())
        return str(error.value)

    assert allowed_actions(session) == ["open", "close"]
    assert "is scheduled: it cannot be paused" in refused("pause")
    refused("resume")
    change_state(db, session=session, action="open", actor="test", now=clock.now())
    assert allowed_actions(session) == ["pause", "close"]
    refused("open"), refused("resume")
    change_state(db, session=session, action="pause", actor="test", now=clock.advance(60))
    assert session.state == SessionState.paused and session.paused_at == clock.now()
    assert allowed_actions(session) == ["resume", "close"]
    refused("pause")
    change_state(db, session=session, action="resume", actor="test", now=clock.advance(60))
    assert session.state == SessionState.open and session.paused_at is None
    change_state(db, session=session, action="close", actor="test", now=clock.now())
    assert allowed_actions(session) == []
    for action in ("open", "pause", "resume", "close"):
        assert "is closed" in refused(action)
    with pytest.raises(ValueError, match="unknown"):
        change_state(db, session=session, action="delete", actor="test", now=clock.now())
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target == "session:S1")
                         .order_by(AuditEvent.id)).all()
    # Opening a session that was not prepared draws the forms first (app/sessions/prepare.py).
    assert actions == ["session.create", "session.prepare", "session.open", "session.pause",
                       "session.resume", "session.close"]


def test_closing_hands_in_every_running_attempt(db, clock):
    with_blueprint(db, clock)
    session = schedule(db, clock)
    rows = roster.parse_roster(ROSTER.encode(), source="r.csv")
    roster.import_roster(db, session=session, rows=rows, secret=SECRET, actor="t",
                         now=clock.now())
    change_state(db, session=session, action="open", actor="t", now=clock.now())
    tokens = roster.tokens_for_session(db, session=session, secret=SECRET)
    for seat, row in enumerate(tokens):
        result = attempts.login(db, nip=row.nip, token=row.token, workstation=f"PC-{seat}",
                                client_addr="10.0.0.1", secret=SECRET, now=clock.now())
        timing.start(db, attempt=result.attempt, now=clock.now())
    handed_in = change_state(db, session=session, action="close", actor="user:admin",
                             now=clock.advance(120))
    assert handed_in == 2
    assert set(db.scalars(select(Attempt.state))) == {AttemptState.submitted}
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "session.close"))
    assert event.data == {"from": "open", "handed_in": 2}


def test_proctors_are_assigned_and_unassigned_with_an_audit_trail(db, clock):
    with_blueprint(db, clock)
    session = schedule(db, clock)
    user(db, "pak.budi")
    assert assign_proctor(db, session=session, username="pak.budi", actor="a", now=clock.now())
    assert not assign_proctor(db, session=session, username="pak.budi", actor="a",
                              now=clock.now())
    with pytest.raises(SessionError):
        assign_proctor(db, session=session, username="siapa", actor="a", now=clock.now())
    assert unassign_proctor(db, session=session, username="pak.budi", actor="a",
                            now=clock.now())
    assert not unassign_proctor(db, session=session, username="pak.budi", actor="a",
                                now=clock.now())
    actions = db.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("session.proctor%"))).all()
    assert actions == ["session.proctor_assign", "session.proctor_unassign"]


# -- admin pages --------------------------------------------------------------------------------


@pytest.fixture
def admin(admin, make_user, database, clock):
    """The shared admin client, with a blueprint and the proctor pak.budi to plan with."""
    with database.transaction() as db:
        with_blueprint(db, clock)
    make_user("pak.budi", role="proctor")
    return admin


def create_via_form(client, **fields):
    page = client.get("/admin/sessions")
    data = {"csrf_token": csrf_from(page.text), "code": "web-1", "name": "Seleksi JPT",
            "room": "Lab 2", "blueprint": "UJI-BP", "starts_at": "2026-12-01T08:00",
            "ends_at": "2026-12-01T12:00", "proctors": ["pak.budi"], **fields}
    return client.post("/admin/sessions", data=data, follow_redirects=False)


def test_admin_schedules_a_session_from_the_form(admin, database):
    page = admin.get("/admin/sessions")
    assert page.status_code == 200 and 'data-testid="session-form"' in page.text
    assert '<option value="UJI-BP"' in page.text and 'name="proctors" multiple' in page.text
    assert 'type="datetime-local"' in page.text and "Asia/Jakarta" in page.text
    assert 'href="/admin/sessions" aria-current="page"' in page.text  # the nav link
    bad = create_via_form(admin, ends_at="2026-12-01T07:00")
    assert bad.status_code == 422 and "waktu selesai harus setelah waktu mulai" in bad.text
    assert 'value="Seleksi JPT"' in bad.text  # the form keeps what was typed
    done = create_via_form(admin)
    assert done.status_code == 303 and done.headers["location"] == "/admin/sessions/WEB-1"
    with database.transaction(write=False) as db:
        session = db.scalar(select(TestSession))
        assert session.starts_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 WIB
        assert db.scalar(select(func.count()).select_from(ProctorAssignment)) == 1
        assert all(db.scalars(select(BankVersion.frozen)))
    listing = admin.get("/admin/sessions")
    assert 'href="/admin/sessions/WEB-1"' in listing.text
    assert "sudah ada" in create_via_form(admin).text


def test_session_page_changes_state_with_a_confirmed_close(admin, database):
    create_via_form(admin)
    page = admin.get("/admin/sessions/WEB-1")
    assert page.status_code == 200 and "Terjadwal" in page.text
    assert 'data-testid="action-open"' in page.text
    assert 'data-testid="action-pause"' not in page.text
    confirm = re.search(r'hx-confirm="([^"]+)"', page.text).group(1)
    assert "WEB-1" in confirm and "dikumpulkan" in confirm
    token = csrf_from(page.text)
    opened = admin.post("/admin/sessions/WEB-1/state", data={"csrf_token": token,
                                                             "action": "open"},
                        headers={"HX-Request": "true"})
    assert opened.status_code == 204 and opened.headers["HX-Redirect"] == "/admin/sessions/WEB-1"
    page = admin.get("/admin/sessions/WEB-1")
    assert 'data-testid="action-pause"' in page.text
    assert 'data-testid="action-open"' not in page.text
    wrong = admin.post("/admin/sessions/WEB-1/state", data={"csrf_token": token,
                                                            "action": "resume"},
                       headers={"HX-Request": "true"})
    assert wrong.status_code == 422 and "<html" not in wrong.text
    assert 'data-testid="state-error"' in wrong.text and "tidak dapat dilanjutkan" in wrong.text
    closed = admin.post("/admin/sessions/WEB-1/state", data={"csrf_token": token,
                                                             "action": "close"})
    assert closed.status_code == 200 and "Ditutup" in closed.text  # followed the redirect
    assert "hx-confirm" not in closed.text  # nothing left to do
    no_csrf = admin.post("/admin/sessions/WEB-1/state", data={"action": "open"})
    assert no_csrf.status_code == 403
    assert admin.get("/admin/sessions/NOPE").status_code == 404


def test_proctor_assignment_from_the_session_page(admin, database):
    create_via_form(admin, proctors=[])
    page = admin.get("/admin/sessions/WEB-1")
    assert '<option value="pak.budi">' in page.text
    token = csrf_from(page.text)
    admin.post("/admin/sessions/WEB-1/proctors", data={"csrf_token": token,
                                                       "username": "pak.budi"})
    page = admin.get("/admin/sessions/WEB-1")
    assert "<code>pak.budi</code>" in page.text
    admin.post("/admin/sessions/WEB-1/proctors", data={"csrf_token": token,
                                                       "username": "pak.budi", "op": "remove"})
    assert "<code>pak.budi</code>" not in admin.get("/admin/sessions/WEB-1").text


def upload(client, data: bytes, name="peserta.csv"):
    token = csrf_from(client.get("/admin/sessions/WEB-1").text)
    return client.post("/admin/sessions/WEB-1/roster", data={"csrf_token": token},
                       files={"file": (name, data, "text/csv")},
                       headers={"HX-Request": "true"})


def test_roster_upload_reports_every_problem_then_imports(admin, database):
    create_via_form(admin)
    bad = upload(admin, ROSTER.replace("198001012005011001", "1,98E+17")
                 .replace("Ahli Muda", "").encode())
    assert bad.status_code == 422 and "<html" not in bad.text
    assert 'data-testid="problem-table"' in bad.text
    # "row 2, column nip (A)" as Indonesian says it
    assert "baris 2, kolom nip (A)" in bad.text and "baris 3, kolom jenjang (D)" in bad.text
    assert "format kolom NIP sebagai teks" in bad.text  # Indonesian first
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(RosterEntry)) == 0
    good = upload(admin, ROSTER.encode())
    assert good.status_code == 200 and 'data-testid="roster-result"' in good.text
    assert "2 peserta baru" in good.text and 'data-testid="roster-198001012005011001"' in good.text
    full = admin.get("/admin/sessions/WEB-1")
    assert all(text in full.text for text in ("Budi Santoso", "Ahli Muda", "Dinas Kesehatan"))


def test_reissue_from_the_roster_table_shows_the_new_token_once(admin, database, settings):
    create_via_form(admin)
    upload(admin, ROSTER.encode())
    page = admin.get("/admin/sessions/WEB-1")
    assert 'action="/admin/sessions/WEB-1/reissue"' in page.text
    token = csrf_from(page.text)
    no_reason = admin.post("/admin/sessions/WEB-1/reissue", headers={"HX-Request": "true"},
                           data={"csrf_token": token, "nip": "198001012005011001"})
    assert no_reason.status_code == 422 and "alasan" in no_reason.text
    done = admin.post("/admin/sessions/WEB-1/reissue", headers={"HX-Request": "true"},
                      data={"csrf_token": token, "nip": "198001012005011001",
                            "reason": "kartu hilang"})
    assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
    shown = re.search(r'data-testid="reissued".*?<code>([A-Z0-9]{4}-[A-Z0-9]{4})</code>',
                      done.text, re.S).group(1)
    with database.transaction(write=False) as db:
        session = db.scalar(select(TestSession))
        current = {r.nip: r.token for r in roster.tokens_for_session(
            db, session=session, secret=settings.resolved_secret())}
        assert current["198001012005011001"] == shown.replace("-", "")
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.reissue_token"))
        assert event.actor == "user:admin" and event.reason == "kartu hilang"
    assert shown not in admin.get("/admin/sessions/WEB-1").text  # shown once only


def test_remove_from_the_roster_table(admin, database):
    create_via_form(admin)
    upload(admin, ROSTER.encode())
    page = admin.get("/admin/sessions/WEB-1")
    assert 'action="/admin/sessions/WEB-1/remove"' in page.text
    token = csrf_from(page.text)
    no_reason = admin.post("/admin/sessions/WEB-1/remove", headers={"HX-Request": "true"},
                           data={"csrf_token": token, "nip": "198001012005011001"})
    assert no_reason.status_code == 422 and "alasan" in no_reason.text
    done = admin.post("/admin/sessions/WEB-1/remove", headers={"HX-Request": "true"},
                      data={"csrf_token": token, "nip": "198001012005011001",
                            "reason": "salah daftar"})
    assert done.status_code == 200 and 'data-testid="roster-removed"' in done.text
    assert 'data-testid="roster-198001012005011001"' not in done.text
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(RosterEntry)) == 1
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "roster.remove"))
        assert event.actor == "user:admin" and event.reason == "salah daftar"


def test_token_downloads_and_cards_page_are_audited(admin, database, settings):
    create_via_form(admin)
    upload(admin, ROSTER.encode())
    page = admin.get("/admin/sessions/WEB-1")
    for link in ("/cards", "/tokens.pdf", "/tokens.csv"):
        assert f'href="/admin/sessions/WEB-1{link}"' in page.text
    cards = admin.get("/admin/sessions/WEB-1/cards")
    assert cards.status_code == 200 and cards.headers["cache-control"] == "no-store"
    assert '<link rel="stylesheet" href="/static/css/print-cards.css">' in cards.text
    assert cards.text.count('data-testid="login-card"') == 2
    assert "Kartu Login Ujian CACT" in cards.text and "masukkan NIP dan token" in cards.text
    assert csp_problems(cards.text) == []
    with database.transaction(write=False) as db:
        session = db.scalar(select(TestSession))
        tokens = roster.tokens_for_session(db, session=session,
                                           secret=settings.resolved_secret())
    assert all(f"{t.token[:4]}-{t.token[4:]}" in cards.text for t in tokens)
    english = admin.get("/admin/sessions/WEB-1/cards?lang=en&nip=198001012005011001")
    assert english.text.count('data-testid="login-card"') == 1
    assert "CACT Test Login Card" in english.text
    pdf = admin.get("/admin/sessions/WEB-1/tokens.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert 'filename="kartu-WEB-1.pdf"' in pdf.headers["content-disposition"]
    exported = admin.get("/admin/sessions/WEB-1/tokens.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0] == "nip,name,token"
    assert admin.get("/static/css/print-cards.css").status_code == 200
    with database.transaction(write=False) as db:
        formats = [e.data["format"] for e in db.scalars(
            select(AuditEvent).where(AuditEvent.action == "session.tokens_export")
            .order_by(AuditEvent.id))]
        assert formats == ["html", "html", "pdf", "csv"]
        everything = " ".join(str([e.reason, e.data]) for e in db.scalars(select(AuditEvent)))
        assert not any(t.token in everything for t in tokens)


def test_every_session_page_form_carries_csrf_and_the_csp_holds(admin, database):
    create_via_form(admin)
    upload(admin, ROSTER.encode())
    for path in ("/admin/sessions", "/admin/sessions/WEB-1", "/admin"):
        html = admin.get(path).text
        forms = re.findall(r"<form\b.*?</form>", html, re.S)
        assert forms, path
        for form in forms:
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (path, form[:120])
        assert csp_problems(html) == [], path


def test_session_pages_are_for_admins_only(client, make_user, database, clock):
    with database.transaction() as db:
        with_blueprint(db, clock)
        schedule(db, clock, code="WEB-1")
    staff_login(client, "pak.budi", make_user("pak.budi", role="proctor"))
    token = csrf_from(client.get("/proctor").text)
    for path in ("/admin/sessions", "/admin/sessions/WEB-1", "/admin/sessions/WEB-1/cards",
                 "/admin/sessions/WEB-1/tokens.csv", "/admin/sessions/WEB-1/tokens.pdf"):
        assert client.get(path).status_code == 403, path
    for path, data in (("/admin/sessions", {"code": "X1"}),
                       ("/admin/sessions/WEB-1/state", {"action": "open"}),
                       ("/admin/sessions/WEB-1/proctors", {"username": "pak.budi"}),
                       ("/admin/sessions/WEB-1/reissue", {"nip": "1", "reason": "x"}),
                       ("/admin/sessions/WEB-1/remove", {"nip": "1", "reason": "x"})):
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    with database.transaction(write=False) as db:
        assert db.scalar(select(TestSession.state)) == SessionState.scheduled
        assert db.scalar(select(AuditEvent).where(
            AuditEvent.action == "session.tokens_export")) is None
