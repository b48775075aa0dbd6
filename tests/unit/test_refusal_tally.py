"""The in-memory tally of throttled logins (app/auth/throttle.py): one window per action and
identifier, handed out once its minute is over, and put back whole when it cannot be written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.auth.throttle import MAX_ADDRESSES_NOTED, RefusalTally, seconds_left

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def note(tally: RefusalTally, addr: str, at: datetime, wait_s: int = 5) -> None:
    tally.note(action="taker.login_throttled", identifier="nip:1", client_addr=addr,
               wait_s=wait_s, now=at)


def test_a_window_is_handed_out_once_its_minute_is_over():
    tally = RefusalTally()
    note(tally, "10.0.0.1", T0)
    note(tally, "10.0.0.2", T0 + timedelta(seconds=30), wait_s=9)
    assert tally.take_due(T0 + timedelta(seconds=59)) == []
    [(action, identifier, window)] = tally.take_due(T0 + timedelta(seconds=60))
    assert (action, identifier, window.count) == ("taker.login_throttled", "nip:1", 2)
    assert window.addresses == ["10.0.0.1", "10.0.0.2"] and window.longest_wait_s == 9
    assert tally.take_due(T0 + timedelta(hours=1), everything=True) == []


def test_a_window_put_back_is_merged_with_the_refusals_that_came_meanwhile():
    tally = RefusalTally()
    note(tally, "10.0.0.1", T0, wait_s=30)
    taken = tally.take_due(T0 + timedelta(minutes=1))
    note(tally, "10.0.0.2", T0 + timedelta(minutes=2))  # while the write was failing
    tally.put_back(taken)
    [(_, _, window)] = tally.take_due(T0, everything=True)
    assert window.count == 2 and window.longest_wait_s == 30
    assert (window.started, window.last) == (T0, T0 + timedelta(minutes=2))
    assert sorted(window.addresses) == ["10.0.0.1", "10.0.0.2"]


def test_at_most_a_few_addresses_are_noted_but_every_refusal_is_counted():
    tally = RefusalTally()
    for n in range(MAX_ADDRESSES_NOTED + 5):
        note(tally, f"10.0.1.{n}", T0)
    [(_, _, window)] = tally.take_due(T0, everything=True)
    assert window.count == MAX_ADDRESSES_NOTED + 5
    assert len(window.addresses) == MAX_ADDRESSES_NOTED


def test_seconds_left_rounds_up_and_is_never_negative():
    assert seconds_left(T0 + timedelta(seconds=1, milliseconds=1), T0) == 2
    assert seconds_left(T0 + timedelta(seconds=3), T0) == 3
    assert seconds_left(T0 - timedelta(seconds=3), T0) == 0
    assert seconds_left(None, T0) == 0
