"""The audit log page and the dashboard show events as sentences with names ("admin menambah
waktu 5 menit untuk Peserta 1: listrik padam"), the raw record beside each for auditors, in
both languages; the names are looked up per page, not per row; the chain is untouched.
Real SQLite and PostgreSQL."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient
from sqlalchemy import event, select

from app import audit
from app.sessions.models import RosterEntry
from tests.conftest import csrf_from
from tests.factories import make_open_session


def _session_with_extra_time(app, admin, database, settings):
    """An open session S1; Peserta 1 logs in; the admin gives 5 minutes for a power cut."""
    with database.transaction() as db:
        _, logins = make_open_session(db, app.state.clock, secret=settings.resolved_secret(),
                                      participants=2)
    taker = TestClient(app)
    response = taker.post("/api/v1/taker/login",
                          json={"nip": logins[0][0], "token": logins[0][1], "workstation": "PC-07"})
    assert response.status_code == 200, response.text
    with database.transaction(write=False) as db:
        entry = min(db.scalars(select(RosterEntry.id)))
    page = admin.get("/proctor/sessions/S1")
    done = admin.post(f"/proctor/sessions/S1/peserta/{entry}/extra_time",
                      data={"minutes": "5", "reason": "listrik padam",
                            "csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert done.status_code == 303, done.text
    return logins


def test_events_read_as_sentences_with_the_raw_record_beside(admin, app, database, settings):
    logins = _session_with_extra_time(app, admin, database, settings)
    page = html.unescape(admin.get("/admin/audit").text)
    assert "admin masuk" in page  # auth.login by the staff account "admin"
    assert "admin menambah waktu 5 menit untuk Peserta 1: listrik padam" in page
    assert f"Peserta 1 ({logins[0][0]}) masuk ujian di komputer PC-07" in page
    assert "admin membuka sesi" not in page  # the factory opened S1 without an event
    # the raw record stays for auditors: the code column and the sentence's title
    assert '<code data-testid="audit-code">attempt.extra_time</code>' in page
    assert 'title="attempt.extra_time · user:admin · attempt:1"' in page

    dashboard = html.unescape(admin.get("/admin").text)
    assert "admin menambah waktu 5 menit untuk Peserta 1: listrik padam" in dashboard

    admin.cookies.set("cact_lang", "en")
    english = html.unescape(admin.get("/admin/audit").text)
    assert "admin gave Peserta 1 5 minutes extra time: listrik padam" in english
    assert "admin logged in" in english
    with database.transaction(write=False) as db:
        assert audit.verify(db).ok  # shown, not changed


def test_names_are_looked_up_per_page_not_per_row(admin, app, database, settings, clock):
    _session_with_extra_time(app, admin, database, settings)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def page_queries() -> int:
        statements.clear()
        event.listen(database.engine, "before_cursor_execute", count)
        try:
            assert admin.get("/admin/audit").status_code == 200
        finally:
            event.remove(database.engine, "before_cursor_execute", count)
        return len(statements)

    def more(start: int, n: int) -> None:  # rows naming other people and things each
        with database.transaction() as db:
            for i in range(start, start + n):
                audit.record(db, actor=f"user:nobody{i}", action="attempt.pause",
                             target=f"attempt:{100 + i}", now=clock.now(),
                             data={"nip": f"19800101200501{i:04d}", "session": f"X{i}"})
                audit.record(db, actor=f"taker:1990{i:014d}", action="bank.export",
                             target=f"bank:B{i}/v1", now=clock.now())

    more(0, 2)
    few = page_queries()  # a page with a few of these rows and the older ones
    more(2, 40)
    many = page_queries()  # a full page of 50 of them: 150 references
    assert many <= few < 15


def test_a_broken_chain_is_explained_in_the_readers_language(admin, database, clock):
    from tests.integration.test_audit import tamper, write_events

    write_events(database, clock)
    tamper(database, "UPDATE audit_events SET reason = 'nothing happened' WHERE id = 3")
    page = html.unescape(admin.get("/admin/audit?check=1").text)
    assert "Log TIDAK utuh mulai baris 3: baris 3 telah diubah (isinya tidak cocok" in page
    assert "was altered" not in page
    admin.cookies.set("cact_lang", "en")
    page = html.unescape(admin.get("/admin/audit?check=1").text)
    assert "row 3 was altered (its content does not match its hash)" in page
