"""Admin pages for test sessions: schedule one, open/pause/resume/close it, assign proctors,
set how its results are read (purpose, JPM cap), upload the roster (with the full located
error report), reissue a token, and print login cards (HTML, PDF) or export tokens (CSV).

Every page that shows tokens is audited as ``session.tokens_export`` and is not cached: whoever
holds a card or the CSV can log in as that participant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.assembly.models import Blueprint
from app.assembly.service import all_blueprints
from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.bank.parsed import ImportFailed, Problem
from app.db import DbSession, WriteDb
from app.delivery import seb
from app.sessions import prepare, scoring_settings
from app.sessions import roster as roster_service
from app.sessions import seb as seb_settings
from app.sessions import service as service
from app.sessions.cards import card_labels, cards_pdf, group_token
from app.sessions.deps import session_or_404 as _session_or_404
from app.sessions.models import TestSession, clean_nip
from app.web import LANGUAGES, redirect, render, request_language, translate

router = APIRouter(prefix="/admin/sessions")
MAX_ROSTER_BYTES = 2 * 1024 * 1024


def _list_page(request: Request, db: Session, *, status_code: int = 200, error: str = "",
               form: dict | None = None) -> Response:
    return render(request, "sessions/sessions.html", status_code=status_code,
                  sessions=service.session_rows(db), blueprints=all_blueprints(db),
                  staff=service.staff_choices(db),
                  error=error, form=form or {"proctors": []},
                  zone=request.app.state.settings.timezone)


@router.get("", include_in_schema=False)
def sessions_page(request: Request, db: DbSession, _user: AdminUser) -> Response:
    return _list_page(request, db)


def _local(value: str, zone: ZoneInfo) -> datetime:
    """A date-time input's value ("2026-12-01T08:00") in the agency's time zone."""
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=zone)
    except ValueError:
        raise service.SessionError("time_format", value=value) from None


@router.post("", include_in_schema=False)
async def sessions_create(
    request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
    code: Annotated[str, Form(max_length=64)],
    blueprint: Annotated[str, Form(max_length=64)],
    starts_at: Annotated[str, Form(max_length=32)],
    ends_at: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=300)] = "",
    room: Annotated[str, Form(max_length=200)] = "",
    proctors: Annotated[list[str] | None, Form()] = None,
) -> Response:
    form = {"code": code, "name": name, "room": room, "blueprint": blueprint,
            "starts_at": starts_at, "ends_at": ends_at, "proctors": proctors or []}
    zone = ZoneInfo(request.app.state.settings.timezone)
    try:
        session = service.create_session(
            db, code=code, name=name, room=room, blueprint_code=blueprint,
            starts_at=_local(starts_at, zone), ends_at=_local(ends_at, zone),
            proctor_usernames=proctors or [], actor=_actor(user), now=clock.now())
    except service.SessionError as exc:  # refused before anything was written
        return _list_page(request, db, status_code=422, form=form,
                          error=exc.text(request_language(request)))
    return redirect(request, f"/admin/sessions/{session.code}")


def _session_page(request: Request, db: Session, session: TestSession, *,
                  status_code: int = 200, fragment: str | None = None,
                  headers: dict[str, str] | None = None, **context) -> Response:
    assigned = service.session_proctors(db, session)
    taken = {u.id for u in assigned}
    defaults: dict[str, Any] = {
        "state_error": "", "proctor_error": "", "roster_error": "", "result": None,
        "problems": [], "reissued": None, "removed": None, "seb_error": "",
        "seb": seb.config_of(session.settings), "scoring_error": "", "scoring_notice": "",
        "scoring": scoring_settings.current(session),
        "scoring_stale": scoring_settings.stale_results(db, session)}
    return render(
        request, "sessions/session.html", fragment=fragment, status_code=status_code,
        headers=headers, session=session, blueprint=db.get(Blueprint, session.blueprint_id),
        actions=service.allowed_actions(session), proctors=assigned,
        other_staff=[u for u in service.staff_choices(db) if u.id not in taken],
        roster=roster_service.roster_rows(db, session),
        live_attempts=service.live_attempt_count(db, session),
        prepared_missing=len(prepare.unprepared_entries(db, session)[0])
        if session.prepared_at else 0,
        **{**defaults, **context})


@router.get("/{code}", include_in_schema=False)
def session_page(request: Request, code: str, db: DbSession, _user: AdminUser,
                 scoring: str = "") -> Response:
    notice = (translate(request_language(request), "sessions.scoring_saved")
              if scoring == "saved" else "")
    return _session_page(request, db, _session_or_404(db, code), scoring_notice=notice)


@router.post("/{code}/state", include_in_schema=False)
async def session_state(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    action: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = _session_or_404(db, code)
    if action not in service.TRANSITIONS:
        raise HTTPException(status_code=400)
    try:
        service.change_state(db, session=session, action=action, actor=_actor(user),
                             now=clock.now(), reason=reason)
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             fragment="sessions/_session_state.html",
                             state_error=exc.text(request_language(request)))
    return redirect(request, f"/admin/sessions/{session.code}")


@router.post("/{code}/prepare", include_in_schema=False)
async def session_prepare(request: Request, code: str, db: DbSession, clock: ClockDep,
                          user: AdminUser) -> Response:
    """Draw every taker's form now (app/sessions/prepare.py)."""
    session = _session_or_404(db, code)
    try:
        prepare.prepare_session(db, session=session, actor=_actor(user), now=clock.now())
    except prepare.PrepareRefused:
        return _session_page(request, db, session, status_code=422,
                             fragment="sessions/_session_state.html",
                             state_error=translate(request_language(request),
                                                   "sessions.prepare_closed"))
    return redirect(request, f"/admin/sessions/{session.code}")


@router.post("/{code}/proctors", include_in_schema=False)
async def session_proctors(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    username: Annotated[str, Form(max_length=64)],
    op: Annotated[str, Form(max_length=8)] = "add",
) -> Response:
    session = _session_or_404(db, code)
    try:
        if op == "remove":
            service.unassign_proctor(db, session=session, username=username,
                                     actor=_actor(user), now=clock.now())
        else:
            service.assign_proctor(db, session=session, username=username, actor=_actor(user),
                                   now=clock.now())
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             proctor_error=exc.text(request_language(request)))
    return redirect(request, f"/admin/sessions/{session.code}")


@router.post("/{code}/seb", include_in_schema=False)
async def session_seb(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    config_key: Annotated[str, Form(max_length=200)] = "",
    browser_exam_keys: Annotated[str, Form(max_length=4000)] = "",
    op: Annotated[str, Form(max_length=8)] = "set",
) -> Response:
    """Require Safe Exam Browser for this session's takers, or stop requiring it (audited;
    see app.sessions.seb and app.delivery.seb)."""
    session = _session_or_404(db, code)
    try:
        seb_settings.set_config(db, session=session, config_key="" if op == "clear" else config_key,
                                browser_exam_keys="" if op == "clear" else browser_exam_keys,
                                actor=_actor(user), now=clock.now())
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             seb_error=exc.text(request_language(request)))
    db.flush()
    seb.forget(request.app)
    return redirect(request, f"/admin/sessions/{session.code}")


@router.post("/{code}/scoring", include_in_schema=False)
async def session_scoring(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    purpose: Annotated[str, Form(max_length=32)] = "",
    jpm_cap: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """The purpose of the assessment and the JPM cap (audited; stored results are rescored
    only by the results page's button, which the page then points to)."""
    session = _session_or_404(db, code)
    try:
        scoring_settings.set_scoring_settings(db, session=session, purpose=purpose,
                                              jpm_cap=jpm_cap, actor=_actor(user),
                                              now=clock.now())
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             scoring_error=exc.text(request_language(request)))
    return redirect(request, f"/admin/sessions/{session.code}?scoring=saved#scoring")


@router.post("/{code}/roster", include_in_schema=False)
def roster_upload(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    file: Annotated[UploadFile, File()],
) -> Response:
    # A plain def (a worker thread): 5,000 rows take a second or more to store with their
    # tokens, which in the event loop held every taker's save that long (#13, finding 6).
    session = _session_or_404(db, code)
    name = (file.filename or "roster.csv").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_ROSTER_BYTES + 1)
    page: dict[str, Any] = {"fragment": "sessions/_roster.html"}
    if len(data) > MAX_ROSTER_BYTES:
        problems = [Problem(name, "", "", "the file is larger than 2 MB; is it really a roster "
                            "CSV?", "roster_file_too_large", {"limit_mb": 2})]
        return _session_page(request, db, session, status_code=422, problems=problems, **page)
    try:
        rows = roster_service.parse_roster(data, source=name)
        result = roster_service.import_roster(
            db, session=session, rows=rows, secret=request.app.state.secret,
            actor=_actor(user), now=clock.now())
    except ImportFailed as exc:
        return _session_page(request, db, session, status_code=422, problems=exc.problems,
                             **page)
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             roster_error=exc.text(request_language(request)), **page)
    return _session_page(request, db, session, result=result, **page)


def _roster_action(request: Request, db: Session, session: TestSession, work,
                   **shown) -> Response:
    """Run one change of the roster; the roster part of the page shows the result, or the
    refusal in the admin's language (nothing changed then)."""
    page: dict[str, Any] = {"fragment": "sessions/_roster.html"}
    try:
        done = work()
    except service.SessionError as exc:
        return _session_page(request, db, session, status_code=422,
                             roster_error=exc.text(request_language(request)), **page)
    return _session_page(request, db, session, **page,
                         **{k: v(done) if callable(v) else v for k, v in shown.items()})


@router.post("/{code}/reissue", include_in_schema=False)
async def token_reissue(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    nip: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The new token is shown once, here, so the admin can hand over a new card."""
    session = _session_or_404(db, code)
    return _roster_action(
        request, db, session,
        lambda: roster_service.reissue_token(
            db, session=session, nip=nip, reason=reason, secret=request.app.state.secret,
            actor=_actor(user), now=clock.now()),
        reissued=lambda token: {"nip": clean_nip(nip),
                                "token": group_token(token)})


@router.post("/{code}/remove", include_in_schema=False)
async def roster_remove(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    nip: Annotated[str, Form(max_length=40)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = _session_or_404(db, code)
    return _roster_action(
        request, db, session,
        lambda: roster_service.remove_from_roster(db, session=session, nip=nip, reason=reason,
                                                  actor=_actor(user), now=clock.now()),
        removed=clean_nip(nip))


def _card_language(lang: str) -> str:
    """Cards are for the participants: Indonesian unless asked otherwise."""
    return lang if lang in LANGUAGES else "id"


@router.get("/{code}/cards", include_in_schema=False)
def cards_page(request: Request, code: str, db: WriteDb, clock: ClockDep, user: AdminUser,
               nip: str = "", lang: str = "") -> Response:
    session = _session_or_404(db, code)
    rows = roster_service.export_tokens(db, session=session, secret=request.app.state.secret,
                                        fmt="html", actor=_actor(user), now=clock.now(),
                                        nip=nip)
    return render(request, "sessions/cards.html", session=session,
                  cards=[{**row._asdict(), "grouped": group_token(row.token)} for row in rows],
                  labels=card_labels(_card_language(lang)), nip=nip)


@router.get("/{code}/tokens.csv", include_in_schema=False)
def tokens_csv(request: Request, code: str, db: WriteDb, clock: ClockDep,
               user: AdminUser) -> Response:
    session = _session_or_404(db, code)
    rows = roster_service.export_tokens(db, session=session, secret=request.app.state.secret,
                                        fmt="csv", actor=_actor(user), now=clock.now())
    return Response(roster_service.tokens_to_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="tokens-{session.code}.csv"'})


@router.get("/{code}/tokens.pdf", include_in_schema=False)
def tokens_pdf(request: Request, code: str, db: WriteDb, clock: ClockDep, user: AdminUser,
               nip: str = "", lang: str = "") -> Response:
    session = _session_or_404(db, code)
    rows = roster_service.export_tokens(db, session=session, secret=request.app.state.secret,
                                        fmt="pdf", actor=_actor(user), now=clock.now(),
                                        nip=nip)
    data = cards_pdf(session=session, rows=rows,
                     labels=card_labels(_card_language(lang)))
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="kartu-{session.code}.pdf"'})
