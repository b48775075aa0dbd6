"""Preparing a session before the morning: every roster entry's attempt and form are drawn at
once, and the morning's login only takes the seat. A prepared attempt is nobody's yet, so
everything that counts who came (console, results, scoring, closing) treats it as absent; a
roster change after preparation draws or drops exactly the forms concerned."""

from __future__ import annotations

from sqlalchemy import func, select

from app import audit
from app.delivery import attempts, timing
from app.delivery.models import Attempt, AttemptItem, AttemptSection, AttemptState
from app.proctoring import console
from app.proctoring import service as proctoring
from app.reports.export import results_table
from app.scoring.service import score_session
from app.sessions import prepare, roster
from app.sessions.models import SessionState
from app.sessions.roster import RosterRow
from app.sessions.service import change_state
from tests.conftest import csrf_from
from tests.factories import make_open_session
from tests.integration.test_demo_and_cli import cact

SECRET = "q" * 40


def forms(db) -> dict[int, list[tuple[int, int, tuple[int, ...]]]]:
    rows = db.execute(select(AttemptItem.attempt_id, AttemptItem.position, AttemptItem.item_id,
                             AttemptItem.option_order).order_by(AttemptItem.attempt_id,
                                                                AttemptItem.position))
    found: dict[int, list] = {}
    for attempt_id, position, item_id, order in rows:
        found.setdefault(attempt_id, []).append((position, item_id, tuple(order)))
    return found


def states(db) -> list[str]:
    return sorted(s.value for s in db.scalars(select(Attempt.state)))


def scheduled(db, clock, participants=4):
    session, logins = make_open_session(db, clock, secret=SECRET, participants=participants)
    session.state = SessionState.scheduled
    db.flush()
    return session, logins


def test_preparing_draws_every_form_once(db, clock):
    session, logins = scheduled(db, clock)
    done = prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    assert (done.drawn, done.already, done.items) == (4, 0, 4 * 5)
    assert states(db) == ["prepared"] * 4
    assert session.prepared_at == clock.now()
    drawn = forms(db)
    assert len(drawn) == 4 and all(len(f) == 5 for f in drawn.values())
    assert len({tuple(f) for f in drawn.values()}) > 1, "each taker draws their own form"
    assert db.scalar(select(func.count()).select_from(AttemptSection)) == 4 * 2
    again = prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    assert (again.drawn, again.already) == (0, 4) and forms(db) == drawn
    actions = [e.action for e in db.scalars(select(audit.AuditEvent))]
    assert actions.count("session.prepare") == 1  # nothing new, nothing recorded


def test_the_login_takes_the_prepared_form_and_the_seat(db, clock):
    session, logins = scheduled(db, clock)
    prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    change_state(db, session=session, action="open", actor="admin", now=clock.now())
    before = forms(db)
    nip, token = logins[0]
    result = attempts.login(db, nip=nip, token=token, workstation="PC-01",
                            client_addr="10.0.0.1", secret=SECRET, now=clock.now())
    attempt = result.attempt
    assert attempt.state == AttemptState.not_started and attempt.workstation_id == "PC-01"
    assert forms(db) == before, "the login drew nothing: the prepared form is the form"
    timing.start(db, attempt=attempt, now=clock.now())
    assert attempt.state == AttemptState.active
    # A second computer is refused as for any attempt.
    refused = None
    try:
        attempts.login(db, nip=nip, token=token, workstation="PC-02", client_addr="10.0.0.2",
                       secret=SECRET, now=clock.now())
    except attempts.TakerError as exc:
        refused = exc.status
    assert refused == 409


def test_opening_an_unprepared_session_prepares_it(db, clock):
    session, _ = scheduled(db, clock, participants=3)
    assert session.prepared_at is None
    change_state(db, session=session, action="open", actor="admin", now=clock.now())
    assert states(db) == ["prepared"] * 3 and session.prepared_at is not None


def test_a_prepared_attempt_is_absent_everywhere_until_the_login(db, clock):
    session, logins = scheduled(db, clock, participants=3)
    prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    change_state(db, session=session, action="open", actor="admin", now=clock.now())
    nip, token = logins[0]
    attempts.login(db, nip=nip, token=token, workstation="PC-01", client_addr="10.0.0.1",
                   secret=SECRET, now=clock.now())
    picture = console.console_state(db, session=session, now=clock.now())
    by_nip = {seat.nip: seat.state for seat in picture.seats}
    assert by_nip[nip] == "reading"
    assert [by_nip[n] for n, _ in logins[1:]] == ["absent", "absent"]
    assert picture.counters["absent"] == 2 and picture.counters["present"] == 1
    rows = {r.nip: r.status for r in results_table(db, session).rows}
    assert [rows[n] for n, _ in logins[1:]] == ["absent", "absent"]
    # Closing hands in the one who came; the absent stay absent, unscored.
    change_state(db, session=session, action="close", actor="admin", now=clock.now())
    # The one who logged in never started: closing hands that attempt in as submitted.
    assert states(db) == ["prepared", "prepared", "submitted"]
    summary = score_session(db, session=session, now=clock.now())
    assert summary.without_attempt == 2


def test_a_roster_change_after_preparation_draws_or_drops_exactly_those_forms(db, clock):
    session, logins = scheduled(db, clock, participants=2)
    prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    before = forms(db)
    roster.import_roster(db, session=session, secret=SECRET, actor="admin", now=clock.now(),
                         rows=[RosterRow(nip="199001012015011001", name="Orang Baru",
                                         job_group="pelaksana")])
    after = forms(db)
    assert len(after) == 3 and {k: v for k, v in after.items() if k in before} == before
    assert states(db) == ["prepared"] * 3
    roster.remove_from_roster(db, session=session, nip=logins[0][0], reason="salah daftar",
                              actor="admin", now=clock.now())
    left = forms(db)
    assert len(left) == 2 and set(left) < set(after)
    assert db.scalar(select(func.count()).select_from(Attempt)) == 2
    assert db.scalar(select(func.count()).select_from(AttemptSection)) == 2 * 2


def test_extra_time_before_arrival_keeps_the_prepared_form(db, clock):
    session, logins = scheduled(db, clock, participants=1)
    prepare.prepare_session(db, session=session, actor="admin", now=clock.now())
    change_state(db, session=session, action="open", actor="admin", now=clock.now())
    before = forms(db)
    entry_id = db.scalar(select(Attempt.roster_entry_id))
    changed = proctoring.bulk(db, session=session, entry_ids=[entry_id], action="extra_time",
                              actor="proctor", now=clock.now(), minutes=10, reason="disabilitas")
    attempt = db.scalar(select(Attempt))
    assert changed == 1 and attempt.extra_time_s == 600
    assert attempt.state == AttemptState.not_started and forms(db) == before
    # Pause for someone not there yet changes nothing.
    assert proctoring.bulk(db, session=session, entry_ids=[entry_id], action="pause",
                           actor="proctor", now=clock.now(), reason="x") == 0


def test_the_session_page_and_the_command_line_prepare(admin, database, clock, settings):
    with database.transaction() as db:
        session, _ = scheduled(db, clock, participants=2)
        code = session.code
    page = admin.get(f"/admin/sessions/{code}")
    assert page.status_code == 200 and 'data-testid="action-prepare"' in page.text
    done = admin.post(f"/admin/sessions/{code}/prepare",
                      data={"csrf_token": csrf_from(page.text)}, follow_redirects=True)
    assert done.status_code == 200 and "Lembar soal disiapkan pada" in done.text
    assert 'data-testid="action-prepare"' not in done.text
    with database.transaction(write=False) as db:
        assert states(db) == ["prepared"] * 2
    ran = cact(database.url, "session", "prepare", code,
               extra_env={"CACT_SECRET_KEY": settings.secret_key})
    assert ran.returncode == 0, ran.stderr
    assert "0 form(s) drawn" in ran.stdout and "2 already there" in ran.stdout
