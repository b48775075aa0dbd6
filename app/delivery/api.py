"""The test-taker JSON API (/api/v1/taker): login, form, autosave, sections, submit.
Documented in OpenAPI (/docs) and docs/api.md; load tools and kiosks depend on it.

These are the requests a lab sends most, all at once at 08:00 and then every few seconds per
taker, so each runs its whole transaction in one worker-thread call (``in_transaction``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.auth.deps import ClockDep
from app.db import RowId, in_transaction
from app.delivery import attempts, login_flow, saving, seb, timing
from app.delivery.deps import bearer_lookup, bearer_token
from app.delivery.models import Attempt, AttemptSection
from app.delivery.schemas import (
    AnswerSaved,
    AnswerUpdate,
    AttemptRead,
    AttemptStatus,
    TakerLoginCreate,
    TakerLoginRead,
)
from app.delivery.views import attempt_bytes

router = APIRouter(prefix="/api/v1/taker", tags=["taker"])

ERRORS: dict[int | str, dict[str, Any]] = {
          401: {"description": "wrong credentials or expired access token"},
          403: {"description": "the session is not open, or it must be taken in Safe "
                                 "Exam Browser (`taker.error_seb`)"},
          409: {"description": "seat held by another computer, or attempt/section closed"},
          422: {"description": "the answer does not fit the item"},
          429: {"description": "too many failed logins; see Retry-After"}}


def json_response(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


client_addr = login_flow.client_addr


def status_of(db: Session, attempt: Attempt, now: datetime) -> AttemptStatus:
    timing.refresh(db, attempt=attempt, now=now)
    section = db.get(AttemptSection, (attempt.id, attempt.current_section))
    return AttemptStatus(state=attempt.state.value, current_section=attempt.current_section,
                         remaining_s=timing.remaining_seconds(attempt, section, now),
                         server_time=now,
                         test_remaining_s=timing.remaining_seconds(attempt, None, now)
                         if attempt.deadline_at else None)


HEARTBEAT_S = 20


async def status_response(request: Request, lookup: Callable[[Session], Attempt],
                          now: datetime, key: str) -> JSONResponse:
    """The status a page polls every few seconds. It also tells the proctor console that the
    page is alive: when the attempt was last seen more than HEARTBEAT_S ago, ``last_seen_at``
    is written through the save batcher (so at most one small write per taker per 20 s, in
    the same group commits as the saves)."""
    def work(db: Session) -> tuple[AttemptStatus, int | None]:
        attempt = lookup(db)
        stale = attempt.state in attempts.LIVE_STATES and (
            attempt.last_seen_at is None
            or (now - attempt.last_seen_at).total_seconds() >= HEARTBEAT_S)
        return status_of(db, attempt, now), attempt.id if stale else None
    status, touch = await in_transaction(request, work, write=False)
    if touch is not None:
        await request.app.state.save_batcher.submit(
            lambda db: saving.touch(db, attempt_id=touch, now=now), key)
    return json_response(status)


SAVE_FAILURES_ALERT = 3  # failed tries before a save that the proctor console should see


def save_work(request: Request, token: str, item_id: int, body: AnswerUpdate, now: datetime,
              workstation: str | None, failures: int = 0) -> Callable[[Session], AnswerSaved]:
    def work(db: Session) -> AnswerSaved:
        seb.check_saving(request, db, token)
        result = saving.save_with_token(
            db, token=token, secret=request.app.state.secret, item_id=item_id,
            response=body.response, seq=body.seq, flagged=body.flagged,
            workstation=workstation, grace_s=request.app.state.settings.save_grace_s, now=now)
        if failures >= SAVE_FAILURES_ALERT and result.attempt_id is not None:
            saving.record_save_failures(db, attempt_id=result.attempt_id, failures=failures,
                                          now=now)
        return AnswerSaved(stored_seq=result.stored_seq, accepted=result.accepted,
                           remaining_s=result.remaining_s, state=result.state)
    return work


@router.post("/login", response_model=TakerLoginRead, responses=ERRORS)
async def taker_login(body: TakerLoginCreate, request: Request) -> JSONResponse:
    """Log in with NIP and token; the access token goes in `Authorization: Bearer ...`."""
    def then(_db: Session, result: attempts.LoginResult) -> TakerLoginRead:
        return TakerLoginRead(attempt_id=result.attempt.id, access_token=result.access_token,
                              state=result.attempt.state.value, session_code=result.session.code)
    return json_response(await login_flow.login(
        request, nip=body.nip, token=body.token,
        workstation=body.workstation or f"addr:{client_addr(request)}", then=then))


@router.get("/attempt", response_model=AttemptRead, responses=ERRORS)
async def taker_attempt(request: Request, clock: ClockDep) -> Response:
    """The form without keys, with stored answers and time left. The first call starts the
    clock (there is no separate start call in the API)."""
    def work(db: Session) -> bytes:
        attempt = bearer_lookup(request, db)
        timing.start(db, attempt=attempt, now=clock.now())
        return attempt_bytes(db, attempt=attempt, now=clock.now())
    return Response(await in_transaction(request, work), media_type="application/json")


@router.get("/status", response_model=AttemptStatus, responses=ERRORS)
async def taker_status(request: Request, clock: ClockDep) -> JSONResponse:
    return await status_response(request, lambda db: bearer_lookup(request, db), clock.now(),
                                 bearer_token(request))


@router.put("/answers/{item_id}", response_model=AnswerSaved,
            responses={**ERRORS, 404: {"description": "the item is not in this form"}})
async def taker_save(item_id: RowId, body: AnswerUpdate, request: Request,
                     clock: ClockDep) -> JSONResponse:
    """Store the answer if `seq` is newer than the stored one; acknowledged after commit."""
    token = bearer_token(request)
    work = save_work(request, token, item_id, body, clock.now(), None)
    return json_response(await request.app.state.save_batcher.submit(work, token))


@router.post("/sections/next", response_model=AttemptStatus, responses=ERRORS)
async def taker_next_section(request: Request, clock: ClockDep) -> JSONResponse:
    def work(db: Session) -> AttemptStatus:
        attempt = bearer_lookup(request, db)
        timing.next_section(db, attempt=attempt, now=clock.now())
        return status_of(db, attempt, clock.now())
    return json_response(await in_transaction(request, work))


@router.post("/submit", response_model=AttemptStatus, responses=ERRORS)
async def taker_submit(request: Request, clock: ClockDep) -> JSONResponse:
    """Hand in the attempt; calling it again changes nothing."""
    def work(db: Session) -> AttemptStatus:
        attempt = bearer_lookup(request, db)
        # Scored by the sweeper seconds later, not here, and committed with other saves and
        # hand-ins (the save batcher): at the end of a session a whole room hands in within
        # seconds, and scoring plus one commit per hand-in held the write slot ~30 ms per
        # taker (see docs/performance.md).
        timing.submit(db, attempt=attempt, reason="taker", actor=f"attempt:{attempt.id}",
                        score=False, now=clock.now())
        return status_of(db, attempt, clock.now())
    return json_response(await request.app.state.save_batcher.submit(work, bearer_token(request)))


@router.post("/logout", status_code=204, responses={
    401: {"description": "missing or expired access token"}})
async def taker_logout(request: Request, clock: ClockDep) -> Response:
    """End this access token on the server (audited). The seat stays bound to this computer:
    log in again with NIP and token, here and only here, to go on."""
    def work(db: Session) -> None:
        bearer_lookup(request, db)  # 401 for an unknown token, like every other call
        attempts.logout(db, token=bearer_token(request), secret=request.app.state.secret,
                        now=clock.now())
    await in_transaction(request, work)
    return Response(status_code=204)
