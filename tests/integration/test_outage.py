"""Outage recovery on a FrozenClock, real SQLite and PostgreSQL: a restart after the heartbeat
went stale credits the downtime to every running attempt (nothing advances or expires because
of the outage, one audit row per session, a second worker credits nothing more), no credit
without an open session or with a fresh heartbeat, the clock watch, the heartbeat loop, and
the proctor's reopen of an attempt the server closed for time (service, HTML and JSON)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.delivery import attempts, saving, timing
from app.delivery.models import Attempt, AttemptItem, AttemptSection, AttemptState
from app.ops import outage
from app.ops.state import get_state, get_value, set_value
from app.proctoring import service
from app.scoring.models import Result
from app.scoring.service import score_pending
from app.sessions.models import RosterEntry, SessionState, TestSession
from tests.conftest import csrf_from, staff_login
from tests.factories import make_open_session
from tests.integration.test_proctor_routes import rooms  # noqa: F401 - a fixture


def begin(db, settings, clock, nip, token, seat):
    result = attempts.login(db, nip=nip, token=token, workstation=seat, client_addr="10.0.0.9",
                            secret=settings.resolved_secret(), now=clock.now())
    timing.start(db, attempt=result.attempt, now=clock.now())
    return result.attempt.id


def state_of(database, clock, attempt_id):
    """(state, current section, seconds left, section deadline) read fresh from the database."""
    with database.transaction(write=False) as db:
        attempt = db.get(Attempt, attempt_id)
        section = db.get(AttemptSection, (attempt.id, attempt.current_section))
        return (attempt.state, attempt.current_section,
                timing.remaining_seconds(attempt, section, clock.now()), section.deadline_at)


def audit_rows(database, action):
    with database.transaction(write=False) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.id)))


def test_a_stale_heartbeat_credits_the_downtime_to_every_running_attempt(
        app, database, settings, clock):
    t0 = clock.now()
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                            participants=4)
        other, _ = make_open_session(db, clock, secret=settings.resolved_secret(),
                                     participants=1, code="S2", first=20)
        session_id, other_id = session.id, other.id
        late = begin(db, settings, clock, *logins[3], "PC-04")  # section 0 due at t0+600
    clock.advance(300)
    with database.transaction() as db:
        running = begin(db, settings, clock, *logins[0], "PC-01")  # section 0 due at t0+900
        paused = begin(db, settings, clock, *logins[1], "PC-02")
        attempts.login(db, nip=logins[2][0], token=logins[2][1], workstation="PC-03",
                       client_addr="10.0.0.9", secret=settings.resolved_secret(),
                       now=clock.now())  # reading the instructions: no clock yet
    clock.advance(50)
    with database.transaction() as db:
        assert service.pause_attempt(db, attempt=db.get(Attempt, paused), actor="user:p",
                                     now=clock.now())
    # The last heartbeat: 5 s after the late taker's section was due (the sweeper had not run).
    clock.advance(255)
    with database.transaction() as db:
        set_value(db, outage.HEARTBEAT, outage.heartbeat_value(clock.now()), now=clock.now())
    assert state_of(database, clock, running)[2] == 295
    clock.advance(500)  # the server is down for 8 min 20 s, longer than the running time left

    outage.on_start(app)

    state, section, left, _ = state_of(database, clock, running)
    assert (state, section, left) == (AttemptState.active, 0, 295)  # not advanced, nothing lost
    # Due before the outage: advanced at its real time, then the new section got the credit.
    state, section, left, _ = state_of(database, clock, late)
    assert (state, section, left) == (AttemptState.active, 1, 300 - 5)
    with database.transaction(write=False) as db:
        assert db.get(AttemptSection, (late, 1)).started_at == t0 + timedelta(seconds=600)
    assert state_of(database, clock, paused)[:3] == (AttemptState.paused, 0, 550)
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(Attempt).where(
            Attempt.state == AttemptState.expired)) == 0
        assert db.scalar(select(Attempt.state).where(Attempt.roster_entry_id.in_(
            select(RosterEntry.id).where(RosterEntry.session_id == session_id))).where(
            Attempt.started_at.is_(None))) == AttemptState.not_started
        record = get_value(db, outage.LAST_OUTAGE)
        assert record["seconds"] == 500 and sorted(record["sessions"]) == sorted(
            [session_id, other_id])
        beat = get_state(db, outage.HEARTBEAT)
        assert beat.value["pid"] == os.getpid() and beat.updated_at == clock.now()
        lines = outage.alerts(db, now=clock.now() + timedelta(minutes=5), session_id=session_id)
        assert [(a.code, a.level) for a in lines] == [("outage", "warning")]
        assert lines[0].text("id") == "Server mati 8 menit 20 detik; waktu semua peserta ditambah"
        assert lines[0].text("en") == "Server was down 8 min 20 s; every taker's time was extended"
        assert outage.alerts(db, now=clock.now(), session_id=999_999) == []
        assert outage.alerts(db, now=clock.now() + timedelta(hours=3)) == []
    credits = audit_rows(database, "session.outage_credit")
    assert [(e.target, e.data["seconds"], e.data["attempts"]) for e in credits] == [
        ("session:S1", 500, 2), ("session:S2", 500, 0)]

    # A second worker starting a moment later finds the fresh heartbeat: no second credit.
    clock.advance(1)
    outage.on_start(app)
    assert len(audit_rows(database, "session.outage_credit")) == 2
    assert state_of(database, clock, running)[2] == 294
    # The sweeper finds nothing due, and the paused attempt's resume keeps its 550 s.
    with database.transaction() as db:
        assert timing.sweep(db, now=clock.now()) == 0
        assert service.resume_attempt(db, attempt=db.get(Attempt, paused), actor="user:p",
                                      now=clock.now())
    assert state_of(database, clock, paused)[:3] == (AttemptState.active, 0, 550)


def test_no_credit_on_first_start_with_a_fresh_heartbeat_or_without_open_sessions(
        app, database, settings, clock):
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=settings.resolved_secret())
        running = begin(db, settings, clock, *logins[0], "PC-01")
    outage.on_start(app)  # first start of this database: no heartbeat, nothing to credit
    with database.transaction(write=False) as db:
        assert get_state(db, outage.HEARTBEAT).updated_at == clock.now()
    clock.advance(settings.outage_threshold_s)  # a quick restart: not an outage
    outage.on_start(app)
    assert state_of(database, clock, running)[2] == 600 - settings.outage_threshold_s
    with database.transaction() as db:
        db.get(TestSession, session.id).state = SessionState.closed
    clock.advance(600)  # a long stop while no session was open
    outage.on_start(app)
    with database.transaction(write=False) as db:
        assert get_value(db, outage.LAST_OUTAGE) is None
        assert get_state(db, outage.HEARTBEAT).updated_at == clock.now()
        assert outage.alerts(db, now=clock.now()) == []
        assert outage.clock_problem(db, now=clock.now()) is None
    assert audit_rows(database, "session.outage_credit") == []


def test_a_clock_set_back_while_down_is_reported_not_credited(app, database, settings, clock):
    with database.transaction() as db:
        make_open_session(db, clock, secret=settings.resolved_secret())
        set_value(db, outage.HEARTBEAT, outage.heartbeat_value(clock.now()), now=clock.now())
    clock.advance(-300)
    with database.transaction(write=False) as db:
        problem = outage.clock_problem(db, now=clock.now())
        assert problem and "went back" in problem and "300 s in the future" in problem
    outage.on_start(app)
    with database.transaction(write=False) as db:
        assert get_value(db, outage.LAST_OUTAGE) is None
        assert get_value(db, outage.CLOCK_JUMP)["seconds"] == -300
        [line] = outage.alerts(db, now=clock.now())
        assert line.code == "clock_jump"
        assert line.text("id").startswith("Jam server melompat mundur 5 menit;")
        assert "jumped -300 s" in outage.clock_problem(db, now=clock.now())
    assert len(audit_rows(database, "server.clock_jump")) == 1


def test_the_clock_watch_sees_jumps_between_heartbeats(app, database, clock):
    watch = outage.ClockWatch()
    start = clock.now()
    assert watch.step(start, 1000.0) is None  # the first reading only remembers
    assert watch.step(start + timedelta(seconds=2), 1002.0) is None
    assert watch.step(start + timedelta(seconds=5), 1003.0) is None  # 2 s of jitter is fine
    assert watch.step(start + timedelta(seconds=305), 1005.0) == pytest.approx(298)
    assert watch.step(start + timedelta(seconds=207), 1007.0) == pytest.approx(-100)
    assert watch.step(start + timedelta(seconds=209), 1009.0) is None

    # The loop's step: writes the heartbeat, and the jump when there is one.
    watch = outage.ClockWatch()
    assert outage.beat(app, watch, mono=50.0) is None
    clock.advance(302)  # NTP moved the wall clock 5 minutes while 2 real seconds passed
    assert outage.beat(app, watch, mono=52.0) == pytest.approx(300)
    with database.transaction(write=False) as db:
        assert get_state(db, outage.HEARTBEAT).updated_at == clock.now()
        assert get_value(db, outage.CLOCK_JUMP) == {"at": clock.now().isoformat(),
                                                    "seconds": 300}
        [line] = outage.alerts(db, now=clock.now())
        assert line.text("id") == ("Jam server melompat maju 5 menit; periksa NTP/chrony dan "
                                   "jam BIOS")
        assert "jumped +300 s" in outage.clock_problem(db, now=clock.now())
        assert outage.clock_problem(db, now=clock.now() + timedelta(hours=2)) is None


def test_a_running_server_writes_its_heartbeat(app, database, clock):
    # the lifespan (on_start, then the heartbeat loop) runs while the client is open
    with TestClient(app), database.transaction(write=False) as db:
        beat = get_state(db, outage.HEARTBEAT)
    assert beat is not None and beat.value["pid"] == os.getpid()
    assert beat.value["at"] == clock.now().isoformat()


def test_duration_text():
    assert outage.duration_text(192) == ("3 menit 12 detik", "3 min 12 s")
    assert outage.duration_text(45) == ("45 detik", "45 s")
    assert outage.duration_text(3720) == ("1 jam 2 menit", "1 h 2 min")


# -- reopen -------------------------------------------------------------------------------------


def closed_for_time(database, settings, clock, logins, index=0, seat="PC-01"):
    """An attempt that lost contact 250 s before its last section's time ran out, then was
    closed by the sweeper and scored."""
    with database.transaction() as db:
        attempt_id = begin(db, settings, clock, *logins[index], seat)
        clock.advance(100)
        timing.next_section(db, attempt=db.get(Attempt, attempt_id), now=clock.now())
    clock.advance(50)  # its last save; the section is due at +300 from the switch
    with database.transaction() as db:
        attempt = db.get(Attempt, attempt_id)
        item = db.scalar(select(AttemptItem).where(AttemptItem.attempt_id == attempt_id,
                                                   AttemptItem.section == 1))
        saving.save_answer(db, attempt=attempt, item_id=item.item_id,
                             response=item.option_order[0], seq=1, flagged=False,
                             workstation=seat, grace_s=15, now=clock.now())
    clock.advance(350)
    with database.transaction() as db:
        assert timing.sweep(db, now=clock.now()) >= 1
        assert db.get(Attempt, attempt_id).state == AttemptState.expired
        score_pending(db, now=clock.now())
    return attempt_id


def test_reopen_gives_back_the_time_left_when_contact_was_lost(database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=3)
    attempt_id = closed_for_time(database, settings, clock, logins)
    with database.transaction(write=False) as db:
        attempt = db.get(Attempt, attempt_id)
        assert (attempt.state, attempt.submit_reason) == (AttemptState.expired, "time")
        assert db.scalar(select(Result).where(Result.attempt_id == attempt_id)) is not None
    with database.transaction() as db:
        with pytest.raises(service.ActionRefused) as refused:
            service.reopen(db, attempt=db.get(Attempt, attempt_id), actor="user:p",
                           now=clock.now(), reason="  ")
        assert refused.value.key == "reason_required"
        with pytest.raises(service.ActionRefused) as refused:
            service.reopen(db, attempt=db.get(Attempt, attempt_id), actor="user:p",
                           now=clock.now(), reason="PC 1 mati", minutes=0)
        assert refused.value.key == "minutes_range"
        given = service.reopen(db, attempt=db.get(Attempt, attempt_id), actor="user:p",
                               now=clock.now(), reason="PC 1 mati")
    assert given == 250
    state, section, left, _ = state_of(database, clock, attempt_id)
    assert (state, section, left) == (AttemptState.active, 1, 250)
    with database.transaction(write=False) as db:
        attempt = db.get(Attempt, attempt_id)
        assert attempt.submitted_at is None and attempt.submit_reason == ""
        assert db.get(AttemptSection, (attempt_id, 1)).ended_at is None
        assert db.scalar(select(Result).where(Result.attempt_id == attempt_id)) is None
    [event] = audit_rows(database, "attempt.reopen")
    assert (event.actor, event.target, event.reason, event.data["seconds"],
            event.data["previous_seat"]) == (
        "user:p", f"attempt:{attempt_id}", "PC 1 mati", 250, "PC-01")
    # Its PC died: the taker carries on at another one without a separate unlock.
    with database.transaction() as db:
        moved = attempts.login(db, nip=logins[0][0], token=logins[0][1], workstation="PC-09",
                               client_addr="10.0.0.9", secret=settings.resolved_secret(),
                               now=clock.now())
        assert (moved.attempt.id, moved.attempt.workstation_id) == (attempt_id, "PC-09")
    # Extra time works on it again, and the hand-in scores it again.
    with database.transaction() as db:
        service.add_extra_time(db, attempt=db.get(Attempt, attempt_id), minutes=5,
                               actor="user:p", now=clock.now(), reason="gangguan")
    assert state_of(database, clock, attempt_id)[2] == 550
    clock.advance(30)
    with database.transaction() as db:
        timing.submit(db, attempt=db.get(Attempt, attempt_id), reason="taker",
                        actor="taker:x", now=clock.now())
    with database.transaction(write=False) as db:
        assert db.get(Attempt, attempt_id).state == AttemptState.submitted
        assert db.scalar(select(Result).where(Result.attempt_id == attempt_id)) is not None
        # Handed in by the taker: not something the server closed, so no reopen.
        with pytest.raises(service.ActionRefused) as refused:
            service.reopen(db, attempt=db.get(Attempt, attempt_id), actor="user:p",
                           now=clock.now(), reason="lagi")
        assert refused.value.key == "reopen_not_expired"
        db.rollback()


def test_reopen_with_the_proctors_minutes_and_refusals(database, settings, clock):
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                            participants=3)
        running = begin(db, settings, clock, *logins[1], "PC-02")
    attempt_id = closed_for_time(database, settings, clock, logins)
    with database.transaction() as db:
        with pytest.raises(service.ActionRefused) as refused:  # still running: nothing to reopen
            service.reopen(db, attempt=db.get(Attempt, running), actor="user:p",
                           now=clock.now(), reason="x")
        assert refused.value.key == "reopen_not_expired"
        service.force_submit(db, attempt=db.get(Attempt, running), actor="user:p",
                             now=clock.now(), reason="curang")
    with database.transaction() as db:
        with pytest.raises(service.ActionRefused) as refused:  # closed by the proctor
            service.reopen(db, attempt=db.get(Attempt, running), actor="user:p",
                           now=clock.now(), reason="x")
        assert refused.value.key == "reopen_not_expired"
        db.get(TestSession, session.id).state = SessionState.paused
        db.get(TestSession, session.id).paused_at = clock.now()
    with database.transaction() as db:
        assert service.reopen(db, attempt=db.get(Attempt, attempt_id), actor="user:p",
                              now=clock.now(), reason="jaringan putus", minutes=3) == 180
    # The session is paused: it comes back paused, with its 3 minutes frozen.
    assert state_of(database, clock, attempt_id)[:3] == (AttemptState.paused, 1, 180)
    clock.advance(60)
    assert state_of(database, clock, attempt_id)[:3] == (AttemptState.paused, 1, 180)


@pytest.fixture
def room(rooms):  # noqa: F811 - the imported fixture, requested by name
    """RUANG-A (proctor pak.budi, three takers) and RUANG-B (proctor bu.sri): the proctor
    routes' rooms."""
    return rooms


def entry_of(database, attempt_id):
    with database.transaction(write=False) as db:
        return db.get(Attempt, attempt_id).roster_entry_id


def test_reopen_over_http_for_the_sessions_proctor_only(client, database, settings, clock,
                                                         room):
    expired = closed_for_time(database, settings, clock, room, index=0)
    with database.transaction() as db:
        running = begin(db, settings, clock, *room[1], "PC-02")
    expired_entry, running_entry = entry_of(database, expired), entry_of(database, running)

    staff_login(client, "bu.sri", "correct-horse-1")  # proctor of the other room
    token = csrf_from(client.get("/proctor").text)
    path = f"/proctor/sessions/RUANG-A/peserta/{expired_entry}/reopen"
    assert client.post(path, data={"csrf_token": token, "reason": "x"}).status_code == 403
    client.cookies.clear()

    staff_login(client, "pak.budi", "correct-horse-1")
    panel = client.get(f"/proctor/sessions/RUANG-A/peserta/{expired_entry}",
                       headers={"HX-Request": "true"})
    assert 'data-testid="do-reopen"' in panel.text
    assert "Buka kembali" in panel.text
    other = client.get(f"/proctor/sessions/RUANG-A/peserta/{running_entry}",
                       headers={"HX-Request": "true"})
    assert 'data-testid="do-reopen"' not in other.text
    token = csrf_from(panel.text)
    assert client.post(path, data={"reason": "x"}).status_code == 403  # no CSRF token
    no_reason = client.post(path, data={"csrf_token": token, "reason": ""},
                            headers={"HX-Request": "true"})
    assert no_reason.status_code == 422
    assert state_of(database, clock, expired)[0] == AttemptState.expired
    done = client.post(path, data={"csrf_token": token, "reason": "PC 1 mati", "minutes": "0"},
                       headers={"HX-Request": "true"})
    assert done.status_code == 200, done.text
    assert "Ujian dibuka kembali" in done.text
    assert state_of(database, clock, expired)[:3] == (AttemptState.active, 1, 250)
    refused = client.post(f"/proctor/sessions/RUANG-A/peserta/{running_entry}/reopen",
                          data={"csrf_token": token, "reason": "x"},
                          headers={"HX-Request": "true"})
    assert refused.status_code == 422
    assert "Hanya ujian yang ditutup server" in refused.text

    # The JSON face: a second attempt closed for time, reopened with the proctor's minutes.
    second = closed_for_time(database, settings, clock, room, index=2, seat="PC-03")
    api = f"/api/v1/proctor/sessions/RUANG-A/seats/{entry_of(database, second)}"
    answer = client.post(api, json={"action": "reopen", "minutes": 4, "reason": "listrik"},
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.json() == {"done": "reopen"}
    assert state_of(database, clock, second)[:3] == (AttemptState.active, 1, 240)
    again = client.post(api, json={"action": "reopen", "reason": "lagi"},
                        headers={"X-CSRF-Token": token})
    assert again.status_code == 422 and again.json()["code"] == "reopen_not_expired"
    assert len(audit_rows(database, "attempt.reopen")) == 2
    # The first one ran out again meanwhile: reopenable while the session is open, not after.
    assert state_of(database, clock, expired)[0] == AttemptState.expired
    panel_path = f"/proctor/sessions/RUANG-A/peserta/{expired_entry}"
    assert 'data-testid="do-reopen"' in client.get(panel_path,
                                                   headers={"HX-Request": "true"}).text
    with database.transaction() as db:
        db.scalar(select(TestSession).where(TestSession.code == "RUANG-A")).state = (
            SessionState.closed)
    assert 'data-testid="do-reopen"' not in client.get(panel_path,
                                                       headers={"HX-Request": "true"}).text
    closed = client.post(path, data={"csrf_token": token, "reason": "x"},
                         headers={"HX-Request": "true"})
    assert closed.status_code == 422 and state_of(database, clock, expired)[0] == (
        AttemptState.expired)


def test_workers_starting_together_credit_the_outage_once(app, database, settings, clock):
    """Two workers start at the same moment after an outage (PostgreSQL: the heartbeat row is
    locked; SQLite: write transactions queue): the time is credited once, not twice."""
    import threading

    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=3)
        running = [begin(db, settings, clock, nip, token, f"PC-{n}")
                   for n, (nip, token) in enumerate(logins)]
        set_value(db, outage.HEARTBEAT, outage.heartbeat_value(clock.now()), now=clock.now())
    clock.advance(120)
    barrier, failures = threading.Barrier(4), []

    def worker():
        barrier.wait()
        try:
            outage.on_start(app)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert [e.data["attempts"] for e in audit_rows(database, "session.outage_credit")] == [3]
    for attempt_id in running:
        assert state_of(database, clock, attempt_id)[2] == 600


def test_a_database_unreachable_at_start_is_credited_by_the_first_heartbeat(
        app, database, settings, clock):
    """A worker that starts while its database cannot be reached still starts (so /healthz can
    say why); the outage is credited by the first heartbeat that gets through, and the sweeper
    closes nothing for time before that."""
    from app.db import Database
    from app.main import _sweep_once

    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=1)
        running = begin(db, settings, clock, *logins[0], "PC-01")
        set_value(db, outage.HEARTBEAT, outage.heartbeat_value(clock.now()), now=clock.now())
    left = state_of(database, clock, running)[2]
    clock.advance(left + 120)  # down longer than the taker's whole time left

    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:9/none"
                           "?connect_timeout=2")
    app.state.db = unreachable
    try:
        outage.on_start(app)  # logs, does not raise
        assert app.state.outage_checked is False
    finally:
        app.state.db = database
        unreachable.dispose()
    assert state_of(database, clock, running)[0] == AttemptState.active

    outage.beat(app, None)  # the database is back: credit first, then the heartbeat

    assert app.state.outage_checked is True
    assert state_of(database, clock, running)[:2] == (AttemptState.active, 0)
    assert state_of(database, clock, running)[2] == left
    assert len(audit_rows(database, "session.outage_credit")) == 1
    assert _sweep_once(app) == 0  # nothing is due: the deadlines moved with the outage
