"""The test-taker JSON API (/api/v1/taker): login, form, autosave, sections, submit.
Documented in OpenAPI (/docs) and docs/api.md; load tools and kiosks depend on it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.auth.deps import ClockDep
from app.db import DbSession
from app.delivery import attempts
from app.delivery.deps import ApiAttempt
from app.delivery.schemas import (
    AnswerSaved,
    AnswerUpdate,
    AttemptRead,
    AttemptStatus,
    TakerLoginCreate,
    TakerLoginRead,
)
from app.delivery.views import attempt_view

router = APIRouter(prefix="/api/v1/taker", tags=["taker"])

ERRORS = {401: {"description": "wrong credentials or expired access token"},
          403: {"description": "the session is not open"},
          409: {"description": "seat held by another computer, or attempt/section closed"},
          422: {"description": "the answer does not fit the item"},
          429: {"description": "too many failed logins; see Retry-After"}}


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=TakerLoginRead, responses=ERRORS)
def taker_login(body: TakerLoginCreate, request: Request, db: DbSession,
                clock: ClockDep) -> TakerLoginRead:
    """Log in with NIP and token; the access token goes in `Authorization: Bearer ...`."""
    result = attempts.login(db, nip=body.nip, token=body.token,
                            workstation=body.workstation or f"addr:{client_addr(request)}",
                            client_addr=client_addr(request), secret=request.app.state.secret,
                            now=clock.now())
    return TakerLoginRead(attempt_id=result.attempt.id, access_token=result.access_token,
                          state=result.attempt.state.value, session_code=result.session.code)


@router.get("/attempt", response_model=AttemptRead, responses=ERRORS)
def taker_attempt(attempt: ApiAttempt, db: DbSession, clock: ClockDep) -> AttemptRead:
    """The form without keys, with stored answers and time left. The first call starts the
    clock (there is no separate start call in the API)."""
    attempts.start(db, attempt=attempt, now=clock.now())
    view = attempt_view(db, attempt=attempt, now=clock.now())
    return AttemptRead.model_validate(view, from_attributes=True)


@router.get("/status", response_model=AttemptStatus, responses=ERRORS)
def taker_status(attempt: ApiAttempt, db: DbSession, clock: ClockDep) -> AttemptStatus:
    return _status(db, attempt, clock.now())


def _status(db, attempt, now) -> AttemptStatus:
    attempts.refresh(db, attempt=attempt, now=now)
    section = db.get(attempts.AttemptSection, (attempt.id, attempt.current_section))
    return AttemptStatus(state=attempt.state.value, current_section=attempt.current_section,
                         remaining_s=attempts.remaining_seconds(attempt, section, now),
                         server_time=now)


@router.put("/answers/{item_id}", response_model=AnswerSaved, responses=ERRORS)
def taker_save(item_id: int, body: AnswerUpdate, attempt: ApiAttempt, request: Request,
               db: DbSession, clock: ClockDep) -> AnswerSaved:
    """Store the answer if `seq` is newer than the stored one; acknowledged after commit."""
    result = attempts.save_answer(db, attempt=attempt, item_id=item_id, response=body.response,
                                  seq=body.seq, flagged=body.flagged,
                                  workstation=attempt.workstation_id,
                                  grace_s=request.app.state.settings.save_grace_s,
                                  now=clock.now())
    return AnswerSaved(stored_seq=result.stored_seq, accepted=result.accepted,
                       remaining_s=result.remaining_s, state=result.state)


@router.post("/sections/next", response_model=AttemptStatus, responses=ERRORS)
def taker_next_section(attempt: ApiAttempt, db: DbSession, clock: ClockDep) -> AttemptStatus:
    attempts.next_section(db, attempt=attempt, now=clock.now())
    return _status(db, attempt, clock.now())


@router.post("/submit", response_model=AttemptStatus, responses=ERRORS)
def taker_submit(attempt: ApiAttempt, db: DbSession, clock: ClockDep) -> AttemptStatus:
    """Hand in the attempt; calling it again changes nothing."""
    attempts.submit(db, attempt=attempt, reason="taker", actor=f"attempt:{attempt.id}",
                    now=clock.now())
    return _status(db, attempt, clock.now())
