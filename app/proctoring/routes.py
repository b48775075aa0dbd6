"""The proctor's live console (HTML + server-sent events, polling as fallback), its actions,
the JSON face of the same (``/api/v1/proctor``), and the room's public score screen.

Access: admins see every session; a proctor only the sessions assigned to them, for every
route here (page, fragments, stream, actions, API). The stream re-reads the database every
second and closes itself after a few minutes so the browser reconnects through the full
authorization again (a proctor taken off the session, or logged out, stops receiving).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from functools import partial
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth import gate, throttle
from app.auth.deps import ClockDep, Forbidden, StaffUser
from app.auth.deps import actor as _actor
from app.auth.models import Role, User
from app.db import DbSession, RowId
from app.proctoring import service
from app.proctoring.console import board_rows, console_state, fingerprint, note_text
from app.sessions import service as session_service
from app.sessions.models import ProctorAssignment, TestSession
from app.web import redirect, render, request_language, template_context, templates, translate

router = APIRouter()
api = APIRouter(prefix="/api/v1/proctor", tags=["proctor"])

STREAM_TICK_S = 1.0
STREAM_REFRESH_S = 10.0  # re-render even without changes: "12 s ago", "disconnected"
STREAM_MAX_S = 240.0


def authorized_session(db: Session, code: str, user: User) -> TestSession:
    """The session, if this staff member may watch it: 404 if it does not exist, 403 for a
    proctor not assigned to it."""
    session = session_service.session_by_code(db, code)
    if session is None:
        raise HTTPException(status_code=404)
    if user.role != Role.admin and db.get(ProctorAssignment, (session.id, user.id)) is None:
        raise Forbidden()
    return session


def console_session(code: str, db: DbSession, user: StaffUser) -> TestSession:
    """The route's session, authorized before anything else of the request is read (a proctor
    of another session gets 403 even for an incomplete form)."""
    return authorized_session(db, code, user)


ConsoleSession = Annotated[TestSession, Depends(console_session)]


def _grid_context(request: Request, db: Session, session: TestSession, now) -> dict[str, Any]:
    zone = ZoneInfo(request.app.state.settings.timezone)
    return {"console": console_state(db, session=session, now=now), "zone": zone,
            "note_text": partial(note_text, request_language(request)),
            "actions": session_service.allowed_actions(session),
            # This worker's last failure to store saves (busy or full database), if recent.
            "storage_alert": request.app.state.save_batcher.recent_failure()}


def _system_alerts(request: Request, db: Session, session: TestSession, now) -> list:
    """The server's alert lines for this session's console (app/ops/alerts.py)."""
    from app.ops.alerts import system_alerts

    state = request.app.state
    return system_alerts(db, settings=state.settings, now=now, session_id=session.id,
                         secret=state.secret)


def _console_page(request: Request, db: Session, session: TestSession, now, *,
                  status_code: int = 200, error: str = "", notice: str = "",
                  panel: dict | None = None) -> Response:
    return render(request, "proctor/console.html", status_code=status_code, error=error,
                  notice=notice, panel=panel, session=session,
                  system_alerts=_system_alerts(request, db, session, now),
                  **_grid_context(request, db, session, now))


@router.get("/proctor/sessions/{code}", include_in_schema=False)
def console_page(request: Request, session: ConsoleSession, db: DbSession,
                 clock: ClockDep) -> Response:
    return _console_page(request, db, session, clock.now())


@router.get("/proctor/sessions/{code}/grid", include_in_schema=False)
def console_grid(request: Request, session: ConsoleSession, db: DbSession,
                 clock: ClockDep) -> Response:
    """The live part alone: what the stream pushes, and what the fallback polls."""
    return render(request, "proctor/_grid.html",
                  **_grid_context(request, db, session, clock.now()))


@router.get("/proctor/sessions/{code}/peringatan", include_in_schema=False)
def console_alerts(request: Request, session: ConsoleSession, db: DbSession,
                   clock: ClockDep) -> Response:
    """The system alert lines alone (disk, schema, key, clock, outage, backup), polled by
    the console every 15 s."""
    return render(request, "ops/_alerts.html",
                  system_alerts=_system_alerts(request, db, session, clock.now()))


def _sse(event: str, html: str) -> str:
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


@router.get("/proctor/sessions/{code}/stream", include_in_schema=False)
async def console_stream(request: Request, code: str, clock: ClockDep,
                         user: StaffUser) -> Response:
    """Server-sent events: ``grid`` with the live part whenever the database says something
    changed (checked every second), and at least every 10 s."""
    database = request.app.state.db

    def authorize() -> int:
        with database.transaction(write=False) as db:
            return authorized_session(db, code, user).id

    session_id = await run_in_threadpool(authorize)
    context = template_context(request)
    grid = templates.get_template("proctor/_grid.html")
    row = templates.get_template("proctor/_seat_row.html")
    counters = templates.get_template("proctor/_counters.html")

    def current() -> tuple:
        with database.transaction(write=False) as db:
            return fingerprint(db, session_id=session_id)

    def snapshot() -> tuple[dict, dict[int, str]]:
        with database.transaction(write=False) as db:
            session = db.get(TestSession, session_id)
            page = {**context, **_grid_context(request, db, session, clock.now())}
        code = page["console"].code
        return page, {s.entry_id: row.render({**page, "s": s, "code": code, "oob": True})
                      for s in page["console"].seats}

    async def events():
        """A full ``grid`` first (and whenever the roster or the session state changed);
        after that ``rows``: the counters and only the rows whose HTML changed, swapped out
        of band, so a room of 300 costs the browser a few rows per push, not the table."""
        yield "retry: 2000\n\n"
        started = last_push = time.monotonic()
        mark = shape = None
        shown: dict[int, str] = {}
        while time.monotonic() - started < STREAM_MAX_S:
            if await request.is_disconnected():
                return
            new_mark = await run_in_threadpool(current)
            if new_mark != mark or time.monotonic() - last_push >= STREAM_REFRESH_S:
                page, rows = await run_in_threadpool(snapshot)
                new_shape = (tuple(rows), page["console"].session_state)
                if new_shape != shape:
                    yield _sse("grid", grid.render(page))
                else:
                    changed = "".join(html for key, html in rows.items()
                                      if shown.get(key) != html)
                    # Rows go in a <template>: parsed after a <div>, a bare <tr> is dropped.
                    yield _sse("rows", counters.render({**page, "oob": True})
                               + f"<template>{changed}</template>")
                mark, shape, shown, last_push = new_mark, new_shape, rows, time.monotonic()
            await asyncio.sleep(STREAM_TICK_S)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


def _panel(db: Session, session: TestSession, entry_id: int, now) -> dict:
    state = console_state(db, session=session, now=now)
    seat = next((s for s in state.seats if s.entry_id == entry_id), None)
    if seat is None:
        raise HTTPException(status_code=404)
    from app.proctoring.models import Incident

    notes = list(db.scalars(select(Incident).where(
        Incident.session_id == session.id, Incident.attempt_id == seat.attempt_id)
        .order_by(Incident.id.desc()).limit(20))) if seat.attempt_id else []
    locks = throttle.active_locks(db, now=now, identifier=f"nip:{seat.nip}")
    return {"seat": seat, "notes": notes, "locks": locks}


def _panel_fragment(request: Request, session: TestSession, panel: dict, *,
                    status_code: int = 200, error: str = "", notice: str = "") -> Response:
    """The participant's panel alone (the console's drawer swaps it in)."""
    return render(request, "proctor/_panel.html", status_code=status_code, session=session,
                  panel=panel, error=error, notice=notice,
                  zone=ZoneInfo(request.app.state.settings.timezone),
                  note_text=partial(note_text, request_language(request)))


@router.get("/proctor/sessions/{code}/peserta/{entry_id}", include_in_schema=False)
def seat_panel(request: Request, session: ConsoleSession, entry_id: RowId, db: DbSession,
               clock: ClockDep) -> Response:
    panel = _panel(db, session, entry_id, clock.now())
    if request.headers.get("HX-Request"):
        return _panel_fragment(request, session, panel)
    return _console_page(request, db, session, clock.now(), panel=panel)


def _error_text(request: Request, exc: service.ActionRefused) -> str:
    return translate(request_language(request), f"proctor.error_{exc.key}", **exc.params)


def run_seat_action(request: Request, db: Session, *, session: TestSession, entry_id: int,
                    action: str, user: User, now: datetime, minutes: int = 0,
                    reason: str = "") -> str:
    """The service's seat action, with its refusals as HTTP answers where they are not the
    proctor's to read (an unknown action or participant)."""
    try:
        done = service.seat_action(db, session=session, entry_id=entry_id, action=action,
                                   user=user, now=now, minutes=minutes, reason=reason)
    except service.UnknownAction:
        raise HTTPException(status_code=400) from None
    except service.NotInSession:
        raise HTTPException(status_code=404) from None
    if action == "clear_throttle":  # this worker at once, the others within two seconds
        gate.lock_cache(request.app).forget()
    return done


@router.post("/proctor/sessions/{code}/peserta/{entry_id}/{action}", include_in_schema=False)
async def seat_action(
    request: Request, session: ConsoleSession, entry_id: RowId, action: str, db: DbSession,
    clock: ClockDep, user: StaffUser,
    minutes: Annotated[int, Form(ge=0, le=service.MAX_EXTRA_MINUTES)] = 0,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    now = clock.now()
    try:
        done = run_seat_action(request, db, session=session, entry_id=entry_id, action=action,
                               user=user, now=now, minutes=minutes, reason=reason)
    except service.ActionRefused as exc:  # nothing of the action was kept (a savepoint)
        panel = _panel(db, session, entry_id, now)
        if request.headers.get("HX-Request"):
            return _panel_fragment(request, session, panel, status_code=422,
                                   error=_error_text(request, exc))
        return _console_page(request, db, session, now, status_code=422, panel=panel,
                             error=_error_text(request, exc))
    if request.headers.get("HX-Request"):
        return _panel_fragment(request, session, _panel(db, session, entry_id, now),
                               notice=translate(request_language(request), done))
    return redirect(request, f"/proctor/sessions/{session.code}/peserta/{entry_id}")


@router.post("/proctor/sessions/{code}/pilihan", include_in_schema=False)
async def bulk_action(request: Request, session: ConsoleSession, db: DbSession,
                      clock: ClockDep, user: StaffUser) -> Response:
    """Extra time, pause or resume for the selected participants (all or nothing)."""
    form = await request.form()
    entries = [int(v) for v in map(str, form.getlist("entry")) if v.isdigit()]
    action = str(form.get("action", ""))
    minutes_text = str(form.get("minutes", ""))
    minutes = int(minutes_text) if minutes_text.isdigit() else 0
    reason = str(form.get("reason", ""))[:500]
    lang = request_language(request)
    try:
        changed = service.bulk(db, session=session, entry_ids=entries, action=action,
                               actor=_actor(user), now=clock.now(), minutes=minutes,
                               reason=reason)
    except service.ActionRefused as exc:  # all or nothing: nobody got the minutes
        return _console_page(request, db, session, clock.now(), status_code=422,
                             error=_error_text(request, exc))
    return _console_page(request, db, session, clock.now(),
                         notice=translate(lang, "proctor.bulk_done", count=changed))


@router.post("/proctor/sessions/{code}/state", include_in_schema=False)
async def session_state(
    request: Request, session: ConsoleSession, db: DbSession, clock: ClockDep,
    user: StaffUser, action: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Open, pause all, resume all, close (closing asks for a ticked confirmation)."""
    if action not in session_service.TRANSITIONS:
        raise HTTPException(status_code=400)
    lang = request_language(request)
    if action == "close" and confirm != "yes":
        return _console_page(request, db, session, clock.now(), status_code=422,
                             error=translate(lang, "proctor.error_confirm_close"))
    try:
        session_service.change_state(db, session=session, action=action, actor=_actor(user),
                                     now=clock.now(), reason=reason)
    except session_service.SessionError as exc:
        return _console_page(request, db, session, clock.now(), status_code=422,
                             error=exc.text(lang))
    return redirect(request, f"/proctor/sessions/{session.code}")


@router.post("/proctor/sessions/{code}/papan", include_in_schema=False)
async def display_switch(
    request: Request, session: ConsoleSession, db: DbSession, clock: ClockDep,
    user: StaffUser, enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    service.set_public_display(db, session=session, enabled=enabled == "on",
                               actor=_actor(user), now=clock.now())
    return redirect(request, f"/proctor/sessions/{session.code}")


# -- the room's screen (no login: the unguessable key in the address is the permission) -----


def _board_session(db: Session, code: str, key: str) -> TestSession:
    from app.auth.security import constant_time_equal

    session = session_service.session_by_code(db, code)
    expected = (session.settings or {}).get("display_key") if session else None
    if not (session and session.public_scores and expected
            and constant_time_equal(expected, key)):
        raise HTTPException(status_code=404)
    return session


@router.get("/papan/{code}/{key}", include_in_schema=False)
def board_page(request: Request, code: str, key: str, db: DbSession) -> Response:
    session = _board_session(db, code, key)
    return render(request, "proctor/board.html", fragment="proctor/_board_rows.html",
                  session=session, rows=board_rows(db, session=session), key=key,
                  zone=ZoneInfo(request.app.state.settings.timezone))


# -- JSON ----------------------------------------------------------------------------------------


class SeatRead(BaseModel):
    entry_id: int
    nip: str
    name: str
    seat: str
    state: str
    answered: int
    total: int
    flagged: int
    remaining_s: int | None
    seen_ago_s: int | None
    extra_min: int
    attention: list[str]


class ConsoleRead(BaseModel):
    code: str
    session_state: str
    counters: dict[str, int]
    seats: list[SeatRead]


class SeatActionCreate(BaseModel):
    action: service.SeatAction
    minutes: int = Field(0, ge=0, le=service.MAX_EXTRA_MINUTES)
    reason: str = Field("", max_length=2000)


API_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no staff session (log in at /login)"},
    403: {"description": "a proctor not assigned to this session"},
    404: {"description": "no such session, or no such participant in it"}}


@api.get("/sessions/{code}", response_model=ConsoleRead, responses=API_REFUSALS)
def api_console(session: ConsoleSession, db: DbSession, clock: ClockDep) -> ConsoleRead:
    """The console's rows as JSON (same access rule as the page)."""
    state = console_state(db, session=session, now=clock.now())
    return ConsoleRead(code=state.code, session_state=state.session_state,
                       counters=state.counters, seats=[
                           SeatRead(**{**s.__dict__, "attention": [k for k, _ in s.attention]})
                           for s in state.seats])


@api.post("/sessions/{code}/seats/{entry_id}",
          responses={**API_REFUSALS, 422: {"description": "refused: see `code`"}})
def api_seat_action(session: ConsoleSession, entry_id: RowId, body: SeatActionCreate,
                    request: Request, db: DbSession, clock: ClockDep,
                    user: StaffUser) -> JSONResponse:
    """One action on one participant (cookie session + X-CSRF-Token header)."""
    try:
        done = run_seat_action(request, db, session=session, entry_id=entry_id,
                               action=body.action, user=user, now=clock.now(),
                               minutes=body.minutes, reason=body.reason)
    except service.ActionRefused as exc:
        return JSONResponse({"detail": str(exc), "code": exc.key}, status_code=422)
    return JSONResponse({"done": done.removeprefix("proctor.done_")})
