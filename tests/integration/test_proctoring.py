"""Proctor actions as services, with the time arithmetic on a FrozenClock: pause and resume
(one and all), extra time before and after the start, unlock, force submit, reset, incident
notes, selections, and the console's picture of the room. Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.delivery import attempts, saving, timing
from app.delivery.models import Attempt, AttemptItem, AttemptSection, AttemptState
from app.proctoring import service
from app.proctoring.console import console_state, fingerprint
from app.proctoring.models import Incident
from app.sessions.models import RosterEntry
from app.sessions.service import change_state
from tests.factories import make_open_session

SECRET = "p" * 40


@pytest.fixture
def room(db, clock):
    session, logins = make_open_session(db, clock, secret=SECRET, participants=3)
    return session, logins


def login(db, clock, nip, token, seat="PC-01"):
    return attempts.login(db, nip=nip, token=token, workstation=seat, client_addr="10.0.0.1",
                          secret=SECRET, now=clock.now())


def begin(db, clock, nip, token, seat="PC-01"):
    result = login(db, clock, nip, token, seat)
    timing.start(db, attempt=result.attempt, now=clock.now())
    return result


def deadlines(db, attempt):
    section = db.get(AttemptSection, (attempt.id, attempt.current_section))
    return attempt.deadline_at, section.deadline_at


def remaining(db, clock, attempt):
    section = db.get(AttemptSection, (attempt.id, attempt.current_section))
    return timing.remaining_seconds(attempt, section, clock.now())


def actions(db, name):
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == name)))


def first_item(db, attempt):
    return db.scalars(select(AttemptItem).where(AttemptItem.attempt_id == attempt.id)
                      .order_by(AttemptItem.position)).first()


def save(db, clock, result, seq=1):
    from app.bank.models import Item, ItemKind

    entry = first_item(db, result.attempt)
    option = entry.option_order[0]
    multiple = db.get(Item, entry.item_id).kind == ItemKind.multiple
    return saving.save_answer(db, attempt=result.attempt, item_id=entry.item_id,
                                response=[option] if multiple else option, seq=seq, flagged=True,
                                workstation="PC-01", grace_s=15, now=clock.now())


def test_paused_time_does_not_count(db, clock, room):
    _, logins = room
    taker = begin(db, clock, *logins[0])
    attempt = taker.attempt
    assert remaining(db, clock, attempt) == 600  # the first section: 10 minutes
    clock.advance(120)
    assert service.pause_attempt(db, attempt=attempt, actor="user:p", now=clock.now(),
                                 reason="toilet")
    assert not service.pause_attempt(db, attempt=attempt, actor="user:p", now=clock.now())
    clock.advance(300)  # five paused minutes: the display stands still, nothing expires
    assert remaining(db, clock, attempt) == 480
    assert timing.sweep(db, now=clock.now() + timedelta(hours=1)) == 0
    with pytest.raises(attempts.TakerError, match="paused"):
        save(db, clock, taker)
    assert service.resume_attempt(db, attempt=attempt, actor="user:p", now=clock.now())
    assert remaining(db, clock, attempt) == 480 and attempt.paused_total_s == 300
    assert save(db, clock, taker).accepted
    clock.advance(480)
    timing.refresh(db, attempt=attempt, now=clock.now())
    assert attempt.current_section == 1  # the first section ended exactly 8 + 5 minutes late
    [resumed] = actions(db, "attempt.resume")
    assert resumed.data == {"paused_s": 300}
    assert actions(db, "attempt.pause")[0].reason == "toilet"


def test_extra_time_before_arrival_at_start_and_while_running(db, clock, room):
    session, logins = room
    entries = {e.participant_id: e.id for e in db.scalars(select(RosterEntry))}
    absent_entry = sorted(entries.values())[2]
    # Not even logged in: the attempt is made now and the minutes wait for the start.
    changed = service.bulk(db, session=session, entry_ids=[absent_entry], action="extra_time",
                           actor="user:p", now=clock.now(), minutes=10, reason="disabilitas")
    assert changed == 1
    late = begin(db, clock, *logins[2])
    assert late.attempt.extra_time_s == 600 and remaining(db, clock, late.attempt) == 1200
    # Running: both the section's and the attempt's deadline move.
    taker = begin(db, clock, *logins[0])
    clock.advance(60)
    before = deadlines(db, taker.attempt)
    with pytest.raises(service.ActionRefused, match="reason"):
        service.add_extra_time(db, attempt=taker.attempt, minutes=5, actor="user:p",
                               now=clock.now(), reason="")
    with pytest.raises(service.ActionRefused, match="1 to 240"):
        service.add_extra_time(db, attempt=taker.attempt, minutes=0, actor="user:p",
                               now=clock.now(), reason="x")
    service.add_extra_time(db, attempt=taker.attempt, minutes=5, actor="user:p",
                           now=clock.now(), reason="listrik padam")
    assert deadlines(db, taker.attempt)[1] == before[1] + timedelta(minutes=5)
    assert remaining(db, clock, taker.attempt) == 840
    # Paused: the minutes are added and the pause still does not count.
    service.pause_attempt(db, attempt=taker.attempt, actor="user:p", now=clock.now())
    service.add_extra_time(db, attempt=taker.attempt, minutes=1, actor="user:p",
                           now=clock.now(), reason="x")
    clock.advance(100)
    service.resume_attempt(db, attempt=taker.attempt, actor="user:p", now=clock.now())
    assert remaining(db, clock, taker.attempt) == 900
    event = actions(db, "attempt.extra_time")[1]
    assert event.reason == "listrik padam" and event.data["minutes"] == 5
    timing.submit(db, attempt=taker.attempt, reason="taker", actor="t", now=clock.now())
    with pytest.raises(service.ActionRefused, match="handed in"):
        service.add_extra_time(db, attempt=taker.attempt, minutes=5, actor="user:p",
                               now=clock.now(), reason="x")


def test_pause_all_and_resume_all_with_the_session(db, clock, room):
    session, logins = room
    one = begin(db, clock, *logins[0])
    two = begin(db, clock, *logins[1], seat="PC-02")
    reader = login(db, clock, *logins[2], seat="PC-03")  # still reading the instructions
    service.pause_attempt(db, attempt=two.attempt, actor="user:p", now=clock.now())
    clock.advance(30)
    change_state(db, session=session, action="pause", actor="user:p", now=clock.now(),
                 reason="gempa")
    assert one.attempt.state == two.attempt.state == AttemptState.paused
    with pytest.raises(attempts.TakerError, match="paused"):
        timing.start(db, attempt=reader.attempt, now=clock.now())
    clock.advance(600)
    change_state(db, session=session, action="resume", actor="user:p", now=clock.now())
    assert one.attempt.state == two.attempt.state == AttemptState.active
    assert remaining(db, clock, one.attempt) == 570  # 30 s used, the 10 paused minutes not
    assert remaining(db, clock, two.attempt) == 600  # paused from the start: nothing used
    timing.start(db, attempt=reader.attempt, now=clock.now())
    assert reader.attempt.state == AttemptState.active


def test_unlock_logs_the_old_seat_out_and_keeps_time(db, clock, room):
    _, logins = room
    taker = begin(db, clock, *logins[0], seat="PC-01")
    save(db, clock, taker, seq=1)
    clock.advance(100)
    with pytest.raises(attempts.TakerError):
        login(db, clock, *logins[0], seat="PC-07")
    incident = db.scalar(select(Incident))
    assert incident.kind == "seat_refused" and incident.attempt_id == taker.attempt.id
    before = deadlines(db, taker.attempt)
    service.unlock(db, attempt=taker.attempt, actor="user:p", now=clock.now(), reason="PC mati")
    assert attempts.attempt_for_access_token(db, token=taker.access_token,
                                             secret=SECRET) is None
    with pytest.raises(attempts.TakerError) as refused:
        saving.save_with_token(db, token=taker.access_token, secret=SECRET,
                                 item_id=first_item(db, taker.attempt).item_id, response=None,
                                 seq=2, flagged=False, workstation="PC-01", grace_s=15,
                                 now=clock.now())
    assert refused.value.status == 401
    moved = login(db, clock, *logins[0], seat="PC-07")
    assert moved.attempt.id == taker.attempt.id and deadlines(db, moved.attempt) == before
    assert remaining(db, clock, moved.attempt) == 500


def test_force_submit_and_reset(db, clock, room):
    session, logins = room
    taker = begin(db, clock, *logins[0])
    save(db, clock, taker)
    with pytest.raises(service.ActionRefused, match="already saved"):
        service.reset(db, attempt=taker.attempt, actor="user:p", now=clock.now(), reason="x")
    with pytest.raises(service.ActionRefused, match="reason"):
        service.force_submit(db, attempt=taker.attempt, actor="user:p", now=clock.now(),
                             reason=" ")
    service.force_submit(db, attempt=taker.attempt, actor="user:p", now=clock.now(),
                         reason="menyontek")
    assert taker.attempt.state == AttemptState.submitted
    assert taker.attempt.submit_reason == "forced"
    assert actions(db, "attempt.force_submit")[0].reason == "menyontek"
    with pytest.raises(service.ActionRefused, match="handed in"):
        service.force_submit(db, attempt=taker.attempt, actor="user:p", now=clock.now(),
                             reason="x")
    # Started by mistake, nothing answered: a new form and a fresh clock; extra time kept.
    wrong = begin(db, clock, *logins[1], seat="PC-02")
    service.add_extra_time(db, attempt=wrong.attempt, minutes=3, actor="user:p",
                           now=clock.now(), reason="x")
    old_seed, entry_id = wrong.attempt.seed, wrong.attempt.roster_entry_id
    clock.advance(200)
    service.reset(db, attempt=wrong.attempt, actor="user:p", now=clock.now(),
                  reason="orang lain di PC")
    fresh = db.scalar(select(Attempt).where(Attempt.roster_entry_id == entry_id))
    assert fresh.seed != old_seed and fresh.started_at is None and fresh.workstation_id is None
    again = login(db, clock, *logins[1], seat="PC-09")
    assert again.attempt.state == AttemptState.not_started and again.attempt.extra_time_s == 180
    assert db.scalar(select(func.count()).select_from(AttemptItem).where(
        AttemptItem.attempt_id == again.attempt.id)) == 5
    assert actions(db, "attempt.reset")[0].reason == "orang lain di PC"


def test_bulk_is_all_or_nothing_and_notes(db, clock, room):
    session, logins = room
    one = begin(db, clock, *logins[0])
    two = begin(db, clock, *logins[1], seat="PC-02")
    ids = sorted(e.id for e in db.scalars(select(RosterEntry)))
    assert service.bulk(db, session=session, entry_ids=ids, action="pause", actor="user:p",
                        now=clock.now()) == 2  # the third has not logged in: nothing to pause
    assert one.attempt.state == two.attempt.state == AttemptState.paused
    with pytest.raises(service.ActionRefused, match="select"):
        service.bulk(db, session=session, entry_ids=[], action="pause", actor="u",
                     now=clock.now())
    with pytest.raises(service.ActionRefused, match="unknown"):
        service.bulk(db, session=session, entry_ids=ids, action="drop", actor="u",
                     now=clock.now())
    with pytest.raises(service.ActionRefused, match="write what happened"):
        service.note(db, session=session, author=None, text="  ", now=clock.now())
    service.note(db, session=session, author=None, text="Peserta izin ke toilet",
                 now=clock.now(), attempt=one.attempt)
    assert db.scalar(select(Incident.note).where(Incident.kind == "note")) == \
        "Peserta izin ke toilet"


def test_console_picture_and_fingerprint(db, clock, room):
    session, logins = room
    empty = fingerprint(db, session_id=session.id)
    taker = begin(db, clock, *logins[0])
    login(db, clock, *logins[1], seat="PC-02")
    assert fingerprint(db, session_id=session.id) != empty
    mark = fingerprint(db, session_id=session.id)
    save(db, clock, taker)
    assert fingerprint(db, session_id=session.id) != mark
    state = console_state(db, session=session, now=clock.now())
    by_nip = {s.nip: s for s in state.seats}
    answering = by_nip[logins[0][0]]
    assert (answering.state, answering.answered, answering.total, answering.flagged,
            answering.remaining_s, answering.seat) == ("answering", 1, 5, 1, 600, "PC-01")
    assert by_nip[logins[1][0]].state == "reading"
    assert by_nip[logins[2][0]].state == "absent"
    assert state.counters == {"present": 2, "answering": 1, "submitted": 0, "absent": 1,
                              "attention": 0, "total": 3}
    clock.advance(120)  # two minutes without a save or a status poll
    later = {s.nip: s for s in console_state(db, session=session, now=clock.now()).seats}
    assert later[logins[0][0]].state == "disconnected"
    assert ("silent", "") in later[logins[0][0]].attention
    assert later[logins[0][0]].seen_ago_s == 120 and later[logins[0][0]].remaining_s == 480
    timing.submit(db, attempt=taker.attempt, reason="taker", actor="t", now=clock.now())
    done = {s.nip: s for s in console_state(db, session=session, now=clock.now()).seats}
    assert done[logins[0][0]].state == "submitted" and done[logins[0][0]].remaining_s is None
