"""Outage recovery: a server that was down costs no taker any time, and a wall clock that
jumps is seen by staff instead of silently eating (or giving) minutes.

How it works:

- Every worker writes the ``heartbeat`` row (ServerState: {"at", "pid", "host"}) every
  ``heartbeat_interval_s`` (:func:`heartbeat_loop`). Its age tells anyone whether a server is
  serving this database (a heartbeat younger than 3 intervals).
- When a worker starts (:func:`on_start`, before its sweeper may close anything for time), it
  reads the heartbeat in one write transaction. If the heartbeat is older than
  ``outage_threshold_s`` while sessions were open or paused, the span since the last heartbeat
  is credited to every running attempt of those sessions: the attempt's deadline and its
  current section's deadline move later by that span, exactly like a pause (see
  app.proctoring.service). A paused attempt needs nothing: its resume already moves the
  deadlines by the whole paused span, the outage included. One audit event per session, the
  ``last_outage`` row for the console's line, and the heartbeat set to now in the same
  transaction, so a second worker starting at the same moment finds a fresh heartbeat and
  credits nothing more. A taker therefore loses at most one heartbeat interval.
- Between heartbeats the loop compares how far the wall clock moved with how far the
  monotonic clock moved (:class:`ClockWatch`): a difference above :data:`CLOCK_JUMP_S` (an NTP
  correction, a wrong BIOS clock set right) is recorded as ``clock_jump`` and shown to staff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import audit
from app.clock import SystemClock
from app.ops.models import ServerState
from app.ops.state import Alert, get_value, set_value

logger = logging.getLogger("cact.outage")

HEARTBEAT = "heartbeat"
LAST_OUTAGE = "last_outage"
CLOCK_JUMP = "clock_jump"
# A wall-clock step larger than this between two heartbeats is a jump, not scheduling jitter.
CLOCK_JUMP_S = 30
# A heartbeat this far in the future means the clock went back since it was written (with
# several workers another one may have written a little after our "now": hence the margin).
FUTURE_MARGIN_S = 5
OUTAGE_ALERT_FOR = timedelta(hours=2)
CLOCK_ALERT_FOR = timedelta(hours=1)
ACTOR = "system:outage"


# -- small helpers ------------------------------------------------------------------------------


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration_text(seconds: float) -> tuple[str, str]:
    """("3 menit 12 detik", "3 min 12 s") for 192 seconds; hours from 60 minutes on."""
    total = max(0, int(round(abs(seconds))))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts_id, parts_en = [], []
    if hours:
        parts_id.append(f"{hours} jam")
        parts_en.append(f"{hours} h")
    if minutes:
        parts_id.append(f"{minutes} menit")
        parts_en.append(f"{minutes} min")
    if secs or not (hours or minutes):
        parts_id.append(f"{secs} detik")
        parts_en.append(f"{secs} s")
    return " ".join(parts_id), " ".join(parts_en)


def heartbeat_value(now: datetime) -> dict[str, Any]:
    """What a worker writes as its heartbeat."""
    return {"at": now.isoformat(), "pid": os.getpid(), "host": socket.gethostname()}


def last_heartbeat(db: Session) -> datetime | None:
    """When a server last said it was alive (None: never)."""
    row = db.get(ServerState, HEARTBEAT)
    if row is None:
        return None
    return _parse((row.value or {}).get("at")) or _as_utc(row.updated_at)


# -- crediting an outage ------------------------------------------------------------------------


def credit_outage(db: Session, *, now: datetime, threshold_s: int) -> dict[str, Any] | None:
    """In the caller's write transaction: if the last heartbeat is older than ``threshold_s``,
    credit the downtime to every running attempt of the open and paused sessions, and set the
    heartbeat to ``now``. Returns the ``last_outage`` record written, or None (no heartbeat
    yet, a fresh one, or no session was open)."""
    from app.delivery import timing
    from app.delivery.models import Attempt, AttemptSection, AttemptState
    from app.sessions.models import SessionState, TestSession

    # PostgreSQL: a second worker starting now waits here until this one has committed the
    # fresh heartbeat (SQLite write transactions are serialized by BEGIN IMMEDIATE already).
    row = db.scalar(select(ServerState).where(ServerState.name == HEARTBEAT).with_for_update())
    previous = None
    if row is not None:
        previous = _parse((row.value or {}).get("at")) or _as_utc(row.updated_at)
    set_value(db, HEARTBEAT, heartbeat_value(now), now=now)
    if previous is None:
        return None  # first start of this database: there was no server to be down
    down = now - previous
    if down.total_seconds() < -CLOCK_JUMP_S:
        # The clock is now earlier than the last heartbeat: it was set back while we were down.
        record_clock_jump(db, seconds=down.total_seconds(), now=now)
        return None
    if down.total_seconds() <= threshold_s:
        return None
    sessions = list(db.scalars(select(TestSession).where(
        TestSession.state.in_((SessionState.open, SessionState.paused)))
        .order_by(TestSession.id)))
    if not sessions:
        return None
    credited: list[int] = []
    for session in sessions:
        count = 0
        for attempt in list(db.scalars(select(Attempt).where(
                Attempt.session_id == session.id, Attempt.state == AttemptState.active)
                .order_by(Attempt.id))):
            # What was already due before the server stopped happens at its real time...
            timing.refresh(db, attempt=attempt, now=previous)
            if attempt.state != AttemptState.active:
                continue
            # ...and everything still running gets the downtime back.
            section = db.get(AttemptSection, (attempt.id, attempt.current_section))
            if attempt.deadline_at:
                attempt.deadline_at += down
            if section is not None and section.deadline_at:
                section.deadline_at += down
            count += 1
        audit.record(db, actor=ACTOR, action="session.outage_credit",
                     target=f"session:{session.code}", now=now,
                     data={"seconds": int(down.total_seconds()), "attempts": count,
                           "from": previous.isoformat(), "until": now.isoformat()})
        credited.append(session.id)
    record = {"from": previous.isoformat(), "until": now.isoformat(),
              "seconds": int(down.total_seconds()), "sessions": credited}
    set_value(db, LAST_OUTAGE, record, now=now)
    db.flush()
    return record


def on_start(app: FastAPI) -> None:
    """Runs in every worker at start, before the sweeper (see module docstring). A database
    that cannot be reached now must not keep the server from starting (it answers /healthz
    with 503 and staff see why): the check is then left pending, the sweeper closes nothing
    for time, and the first heartbeat that reaches the database credits the outage first."""
    app.state.outage_checked = False
    try:
        _credit_on_start(app)
    except SQLAlchemyError:
        logger.exception("outage check at start failed (database unreachable?); the first "
                         "heartbeat that reaches the database does it; the sweeper waits")
        return
    app.state.outage_checked = True


def _credit_on_start(app: FastAPI) -> None:
    settings = app.state.settings
    with app.state.db.transaction() as db:
        record = credit_outage(db, now=app.state.clock.now(),
                               threshold_s=settings.outage_threshold_s)
    if record:
        logger.warning("server was down %d s (since %s); time credited to the running "
                       "attempts of session(s) %s", record["seconds"], record["from"],
                       record["sessions"])


# -- the heartbeat and the clock watch ----------------------------------------------------------


@dataclass
class ClockWatch:
    """Compares the wall clock with the monotonic clock between two heartbeats."""

    wall: datetime | None = None
    mono: float | None = None
    threshold_s: float = CLOCK_JUMP_S

    def step(self, wall: datetime, mono: float) -> float | None:
        """Take one reading; returns the jump in seconds (positive: the wall clock went
        forward more than real time passed) when it exceeds the threshold, else None."""
        jump = None
        if self.wall is not None and self.mono is not None:
            drift = (wall - self.wall).total_seconds() - (mono - self.mono)
            if abs(drift) > self.threshold_s:
                jump = drift
        self.wall, self.mono = wall, mono
        return jump


def record_clock_jump(db: Session, *, seconds: float, now: datetime) -> None:
    """Remember a wall-clock jump (for the console's alert and /healthz) and audit it."""
    set_value(db, CLOCK_JUMP, {"at": now.isoformat(), "seconds": int(seconds)}, now=now)
    audit.record(db, actor=ACTOR, action="server.clock_jump", now=now,
                 data={"seconds": int(seconds)})


def beat(app: FastAPI, watch: ClockWatch | None, *, mono: float | None = None) -> float | None:
    """One heartbeat: write it (a short write transaction) and, with a ``watch``, check the
    wall clock against the monotonic clock. Returns the jump recorded, if any."""
    if not getattr(app.state, "outage_checked", True):
        _credit_on_start(app)  # the start could not reach the database: credit first
        app.state.outage_checked = True
    now = app.state.clock.now()
    jump = watch.step(now, time.monotonic() if mono is None else mono) if watch else None
    with app.state.db.transaction() as db:
        set_value(db, HEARTBEAT, heartbeat_value(now), now=now)
        if jump is not None:
            record_clock_jump(db, seconds=jump, now=now)
    if jump is not None:
        logger.error("the wall clock jumped %+d s between two heartbeats; check NTP/chrony and "
                     "the BIOS clock (deadlines are wall-clock times)", int(jump))
    return jump


async def heartbeat_loop(app: FastAPI) -> None:
    """Every ``heartbeat_interval_s``: the heartbeat, and the clock watch. A failing write (a
    busy or unreachable database) is logged and tried again next time, never fatal."""
    interval = app.state.settings.heartbeat_interval_s
    # Only a real wall clock can jump; a test's frozen clock stands still on purpose.
    watch = ClockWatch() if isinstance(app.state.clock, SystemClock) else None
    while True:
        try:
            await run_in_threadpool(beat, app, watch)
        except Exception:  # the next beat tries again
            logger.exception("heartbeat write failed; trying again in %d s", interval)
        await asyncio.sleep(interval)


# -- what staff see -----------------------------------------------------------------------------


def alerts(db: Session, *, now: datetime, session_id: int | None = None) -> list[Alert]:
    """The outage line (for two hours after a credited outage; with ``session_id`` only if
    that session was credited) and the clock-jump line (for an hour after the jump)."""
    found: list[Alert] = []
    outage = get_value(db, LAST_OUTAGE)
    if isinstance(outage, dict):
        until = _parse(outage.get("until"))
        sessions = outage.get("sessions") or []
        if until and timedelta(0) <= now - until <= OUTAGE_ALERT_FOR and (
                session_id is None or session_id in sessions):
            text_id, text_en = duration_text(outage.get("seconds", 0))
            found.append(Alert(
                "warning", "outage",
                f"Server mati {text_id}; waktu semua peserta ditambah",
                f"Server was down {text_en}; every taker's time was extended"))
    jump = get_value(db, CLOCK_JUMP)
    if isinstance(jump, dict):
        at = _parse(jump.get("at"))
        if at and abs(now - at) <= CLOCK_ALERT_FOR:
            seconds = jump.get("seconds", 0)
            text_id, text_en = duration_text(seconds)
            way_id, way_en = ("maju", "forward") if seconds > 0 else ("mundur", "back")
            found.append(Alert(
                "warning", "clock_jump",
                f"Jam server melompat {way_id} {text_id}; periksa NTP/chrony dan jam BIOS",
                f"Server clock jumped {way_en} {text_en}; check NTP/chrony and the BIOS clock"))
    return found


def clock_problem(db: Session, *, now: datetime) -> str | None:
    """A message when the server's clock cannot be trusted now: the stored heartbeat is in the
    future (the clock went back) or a jump was recorded within the last hour. None if fine."""
    beat_at = last_heartbeat(db)
    if beat_at is not None and (beat_at - now).total_seconds() > FUTURE_MARGIN_S:
        return (f"the clock went back: the last heartbeat ({beat_at.isoformat()}) is "
                f"{int((beat_at - now).total_seconds())} s in the future; check NTP/chrony")
    jump = get_value(db, CLOCK_JUMP)
    if isinstance(jump, dict):
        at = _parse(jump.get("at"))
        if at and abs(now - at) <= CLOCK_ALERT_FOR:
            return (f"the clock jumped {jump.get('seconds', 0):+d} s at {at.isoformat()}; "
                    "check NTP/chrony and the BIOS clock")
    return None
