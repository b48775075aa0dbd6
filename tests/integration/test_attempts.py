"""The taker's attempt as a service: login and seat rule, reproducible form, server clock with
sections, autosave ordering and durability rules, submit, sweeper. Time is a FrozenClock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import audit
from app.assembly.forms import PoolItem, build_form
from app.delivery import attempts, saving, timing
from app.delivery.attempts import TakerError
from app.delivery.models import Answer, AnswerEvent, AttemptItem, AttemptState
from app.sessions.models import SessionState
from tests.factories import make_open_session

SECRET = "s" * 40


@pytest.fixture
def setup(db, clock):
    session, logins = make_open_session(db, clock, secret=SECRET)
    return session, logins


def do_login(db, clock, nip, token, seat="PC-01", addr="10.0.0.1"):
    return attempts.login(db, nip=nip, token=token, workstation=seat, client_addr=addr,
                          secret=SECRET, now=clock.now())


def form_of(db, attempt):
    return list(db.scalars(select(AttemptItem).where(AttemptItem.attempt_id == attempt.id)
                           .order_by(AttemptItem.position)))


def test_login_builds_a_reproducible_form(db, clock, setup):
    session, logins = setup
    result = do_login(db, clock, *logins[0])
    attempt = result.attempt
    form = form_of(db, attempt)
    assert len(form) == 5 and [f.section for f in form] == [0, 0, 0, 1, 1]
    assert attempt.state == AttemptState.not_started and attempt.workstation_id == "PC-01"
    # Rebuild from (seed, bank version): identical items, order and option order.
    from app.bank.models import Item, ItemOption

    options: dict[int, list[int]] = {}
    for item_id, option_id in db.execute(select(ItemOption.item_id, ItemOption.id)
                                         .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(item_id, []).append(option_id)
    pool = [PoolItem(i, v, c, lv, tuple(options[i])) for i, v, c, lv in db.execute(
        select(Item.id, Item.bank_version_id, Item.construct, Item.level))]
    from app.assembly.models import Blueprint

    rebuilt = build_form(db.get(Blueprint, session.blueprint_id).spec, pool, attempt.seed)
    assert [(e.item_id, list(e.option_order), e.position) for e in rebuilt] == \
        [(f.item_id, f.option_order, f.position) for f in form]
    assert "taker.login" in [e.action for e in db.scalars(select(audit.AuditEvent))]


def test_wrong_token_is_refused_and_throttled(db, clock, setup):
    _, logins = setup
    nip, token = logins[0]
    with pytest.raises(TakerError) as excinfo:
        do_login(db, clock, nip, "WRONG234")
    assert excinfo.value.status == 401
    for _ in range(6):
        with pytest.raises(TakerError):
            do_login(db, clock, nip, "WRONG234")
    with pytest.raises(TakerError) as excinfo:
        do_login(db, clock, nip, token)
    assert excinfo.value.status == 429 and excinfo.value.retry_after > 0
    clock.advance(16 * 60)
    assert do_login(db, clock, nip, token.lower()[:4] + "-" + token[4:]).attempt  # typed loosely


def test_session_must_be_open(db, clock, setup):
    session, logins = setup
    session.state = SessionState.scheduled
    with pytest.raises(TakerError) as excinfo:
        do_login(db, clock, *logins[0])
    assert excinfo.value.status == 403


def test_second_computer_is_refused_until_unlocked(db, clock, setup):
    _, logins = setup
    first = do_login(db, clock, *logins[0], seat="PC-01")
    again = do_login(db, clock, *logins[0], seat="PC-01")  # reload / same PC: fine
    assert again.attempt.id == first.attempt.id and again.access_token != first.access_token
    assert attempts.attempt_for_access_token(db, token=first.access_token, secret=SECRET) is None
    with pytest.raises(TakerError) as excinfo:
        do_login(db, clock, *logins[0], seat="PC-02")
    assert excinfo.value.status == 409
    with pytest.raises(ValueError, match="reason"):
        attempts.unlock_seat(db, attempt=first.attempt, reason=" ", actor="user:p", now=clock.now())
    attempts.unlock_seat(db, attempt=first.attempt, reason="PC-01 mati", actor="user:pengawas",
                         now=clock.now())
    moved = do_login(db, clock, *logins[0], seat="PC-02")
    assert moved.attempt.workstation_id == "PC-02"
    event = db.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.action == "attempt.unlock")).one()
    assert event.reason == "PC-01 mati" and event.data == {"previous_seat": "PC-01"}


def started(db, clock, setup):
    _, logins = setup
    result = do_login(db, clock, *logins[0])
    timing.start(db, attempt=result.attempt, now=clock.now())
    return result.attempt, form_of(db, result.attempt)


def choice(db, entry, index=0):
    """A valid answer to the entry's item: an option id, or a list of one for multiple."""
    from app.bank.models import Item

    option = entry.option_order[index]
    return [option] if db.get(Item, entry.item_id).kind.value == "multiple" else option


def save(db, clock, attempt, entry, response, seq, flagged=False):
    return saving.save_answer(db, attempt=attempt, item_id=entry.item_id, response=response,
                                seq=seq, flagged=flagged, workstation="PC-01", grace_s=15,
                                now=clock.now())


def test_seq_ordering_duplicates_and_events(db, clock, setup):
    attempt, form = started(db, clock, setup)
    first = next(f for f in form if not isinstance(choice(db, f), list))
    a, b = first.option_order[0], first.option_order[1]
    assert save(db, clock, attempt, first, a, 2).stored_seq == 2
    late = save(db, clock, attempt, first, b, 1)  # an older save arriving late
    assert late.accepted is False and late.stored_seq == 2
    duplicate = save(db, clock, attempt, first, a, 2)
    assert duplicate.accepted is False
    newer = save(db, clock, attempt, first, b, 3, flagged=True)
    assert newer.accepted and newer.stored_seq == 3 and newer.remaining_s == 600
    answer = db.get(Answer, (attempt.id, first.item_id))
    assert (answer.response, answer.seq, answer.flagged) == (b, 3, True)
    events = db.scalars(select(AnswerEvent.seq).where(AnswerEvent.attempt_id == attempt.id)
                        .order_by(AnswerEvent.id)).all()
    assert events == [2, 3]
    assert attempt.last_seq == 3 or db.scalar(select(func.max(AnswerEvent.seq))) == 3


def test_bad_saves(db, clock, setup):
    attempt, form = started(db, clock, setup)
    single = next(f for f in form if not isinstance(choice(db, f), list))
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, single, 999999, 1)
    assert excinfo.value.status == 422
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, single, [single.option_order[0]], 1)  # a list for one answer
    assert excinfo.value.status == 422
    with pytest.raises(TakerError) as excinfo:
        saving.save_answer(db, attempt=attempt, item_id=10**9, response=None, seq=1,
                             flagged=False, workstation=None, grace_s=15, now=clock.now())
    assert excinfo.value.status == 404
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, form[3], None, 1)  # next section is not open yet
    assert excinfo.value.status == 409
    with pytest.raises(TakerError):
        save(db, clock, attempt, form[0], None, 0)


def test_multiple_response_is_a_list(db, clock, setup):
    attempt, form = started(db, clock, setup)
    from app.bank.models import Item

    multiple = [f for f in form if db.get(Item, f.item_id).kind.value == "multiple"]
    assert multiple  # the blueprint draws the bank's one potensi.verbal item, MUL-1
    entry = multiple[0]
    chosen = list(reversed(entry.option_order[:2]))
    result = save(db, clock, attempt, entry, chosen, 1)
    assert result.accepted
    assert db.get(Answer, (attempt.id, entry.item_id)).response == entry.option_order[:2]


def test_sections_time_out_and_grace(db, clock, setup):
    attempt, form = started(db, clock, setup)
    clock.advance(599)
    assert save(db, clock, attempt, form[0], choice(db, form[0]), 1).remaining_s == 1
    clock.advance(5)  # section 1 timed out 4 s ago: the server moved on by itself
    in_flight = save(db, clock, attempt, form[1], choice(db, form[1]), 2)
    assert in_flight.accepted and attempt.current_section == 1
    clock.advance(20)
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, form[2], choice(db, form[2]), 3)
    assert excinfo.value.status == 409
    assert save(db, clock, attempt, form[3], choice(db, form[3]), 4).remaining_s == 300 - 24
    clock.advance(300)
    timing.refresh(db, attempt=attempt, now=clock.now())
    assert attempt.state == AttemptState.expired and attempt.submit_reason == "time"
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, form[4], choice(db, form[4]), 5)
    assert excinfo.value.status == 409


def test_next_section_and_submit_is_idempotent(db, clock, setup):
    attempt, form = started(db, clock, setup)
    clock.advance(60)
    timing.next_section(db, attempt=attempt, now=clock.now())
    assert attempt.current_section == 1
    with pytest.raises(TakerError) as excinfo:
        timing.next_section(db, attempt=attempt, now=clock.now())
    assert excinfo.value.status == 409
    timing.submit(db, attempt=attempt, reason="taker", actor="taker:x", now=clock.now())
    submitted_at = attempt.submitted_at
    clock.advance(10)
    timing.submit(db, attempt=attempt, reason="taker", actor="taker:x", now=clock.now())
    assert attempt.state == AttemptState.submitted and attempt.submitted_at == submitted_at
    with pytest.raises(TakerError) as excinfo:
        save(db, clock, attempt, form[3], None, 9)
    assert excinfo.value.status == 409


def test_sweeper_closes_attempts_of_absent_takers(db, clock, setup):
    attempt, _ = started(db, clock, setup)
    clock.advance(10 * 60 + 5 * 60 + 1)
    assert timing.sweep(db, now=clock.now()) == 1
    assert attempt.state == AttemptState.expired
    assert timing.sweep(db, now=clock.now()) == 0


def test_submit_all_active(db, clock, setup):
    session, logins = setup
    attempt, _ = started(db, clock, setup)
    other = do_login(db, clock, *logins[1], seat="PC-02").attempt  # still on instructions
    assert timing.submit_all_active(db, session_id=session.id, reason="session_closed",
                                      actor="user:admin", now=clock.now()) == 1
    assert attempt.state == AttemptState.submitted and other.state == AttemptState.submitted
