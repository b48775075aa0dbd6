"""The test taker's pages: login with NIP + token, instructions, one item per screen with a
navigation grid and countdown, autosave from the page's journal, submit, and the finished page.

The page saves through /ujian/jawaban/{item_id} (cookie + CSRF header) with the same rules as
the API; without JavaScript the item form posts back and is saved the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from app.auth.deps import ClockDep, OptionalStaff
from app.bank.media import media_response
from app.db import DbSession, RowId, in_transaction
from app.delivery import attempts, content, login_flow, saving, timing, watch
from app.delivery.api import client_addr, json_response, save_work, status_response
from app.delivery.deps import (
    SEAT_COOKIE,
    TAKER_COOKIE,
    PageAttempt,
    cookie_attempt,
    cookie_lookup_json,
)
from app.delivery.schemas import AnswerUpdate
from app.delivery.views import AttemptView, attempt_view
from app.web import cookie_secure, redirect, render

router = APIRouter()


def _seat(request: Request) -> str:
    return request.cookies.get(SEAT_COOKIE, "")[:64]


def _login_page(request: Request, *, status_code: int = 200, error: str | None = None,
                params: dict[str, Any] | None = None, nip: str = "") -> Response:
    response = render(request, "taker/login.html", status_code=status_code, error=error,
                      error_params=params or {}, nip=nip)
    if not _seat(request):
        # A long-lived id for this lab PC: the attempt is bound to it until a proctor unlocks.
        response.set_cookie(SEAT_COOKIE, attempts.new_seat_id(), max_age=5 * 365 * 86400,
                            httponly=True, samesite="lax", secure=cookie_secure(request))
    return response


@router.get("/", include_in_schema=False)
def taker_home(request: Request, user: OptionalStaff) -> Response:
    if user is not None:
        return redirect(request, "/admin" if user.role.value == "admin" else "/proctor")
    if request.cookies.get(TAKER_COOKIE):
        return redirect(request, "/ujian")
    return _login_page(request)


@router.post("/ujian/masuk", include_in_schema=False)
async def taker_login(request: Request,
                      nip: Annotated[str, Form(max_length=40)] = "",
                      token: Annotated[str, Form(max_length=40)] = "") -> Response:
    seat = _seat(request) or f"addr:{client_addr(request)}"
    try:
        access = await login_flow.login(request, nip=nip, token=token, workstation=seat,
                                        then=lambda _db, result: result.access_token)
    except attempts.TakerError as exc:
        return _login_page(request, status_code=exc.status, error=exc.key,
                           params={"seconds": exc.retry_after}, nip=nip[:40])
    response = redirect(request, "/ujian")
    response.set_cookie(TAKER_COOKIE, access, httponly=True, samesite="lax",
                        secure=cookie_secure(request), max_age=12 * 3600)
    return response


def _first_position(view: AttemptView) -> int:
    """Where to land: the first unanswered item of the current section, else its first item."""
    current = [i for i in view.items if i.section == view.current_section]
    target = next((i for i in current if not i.answered), current[0] if current else None)
    return target.position if target else 1


@router.get("/ujian", include_in_schema=False)
def exam_home(request: Request, attempt: PageAttempt, db: DbSession,
              clock: ClockDep) -> Response:
    view = attempt_view(db, attempt=attempt, now=clock.now())
    if view.state == "not_started":
        return render(request, "taker/instructions.html", view=view)
    if view.state in ("submitted", "expired"):
        return render(request, "taker/finished.html", view=view)
    return redirect(request, f"/ujian/soal/{_first_position(view)}")


@router.post("/ujian/mulai", include_in_schema=False)
def exam_start(request: Request, attempt: PageAttempt, db: DbSession,
               clock: ClockDep) -> Response:
    timing.start(db, attempt=attempt, now=clock.now())
    return redirect(request, "/ujian")


def _item_page(request: Request, db: Session, attempt, position: int, now) -> Response:
    view = attempt_view(db, attempt=attempt, now=now)
    if view.state not in ("active", "paused"):
        return redirect(request, "/ujian")
    item = next((i for i in view.items if i.position == position), None)
    if item is None or view.sections[item.section].state != "open":
        return redirect(request, f"/ujian/soal/{_first_position(view)}")
    open_positions = [i.position for i in view.items
                      if view.sections[i.section].state == "open"]
    return render(
        request, "taker/item.html", view=view, item=item,
        section=view.sections[item.section], open_positions=open_positions,
        has_next_section=view.current_section + 1 < len(view.sections),
        # the current section's place among the sections ("bagian 2 dari 3")
        section_number=view.current_section + 1, section_count=len(view.sections),
    )


@router.get("/ujian/soal/{position}", include_in_schema=False)
def exam_item(request: Request, position: int, attempt: PageAttempt, db: DbSession,
              clock: ClockDep) -> Response:
    return _item_page(request, db, attempt, position, clock.now())


@router.post("/ujian/soal/{position}", include_in_schema=False)
async def exam_item_post(request: Request, position: int, attempt: PageAttempt, db: DbSession,
                         clock: ClockDep) -> Response:
    """Saving without JavaScript: the form posts the choice; the server numbers the save."""
    form = await request.form()
    view = attempt_view(db, attempt=attempt, now=clock.now())
    item = next((i for i in view.items if i.position == position), None)
    if item is None:
        return redirect(request, "/ujian")
    chosen = [int(v) for v in map(str, form.getlist("response")) if v.isdigit()]
    response = (chosen or None) if item.kind == "multiple" else (chosen[0] if chosen else None)
    try:
        saving.save_answer(db, attempt=attempt, item_id=item.item_id, response=response,
                             seq=attempt.last_seq + 1, flagged=form.get("flagged") == "on",
                             workstation=_seat(request), shown=True,
                             grace_s=request.app.state.settings.save_grace_s, now=clock.now())
    except attempts.TakerError:
        return redirect(request, "/ujian")
    target = form.get("go")
    return redirect(request, f"/ujian/soal/{target}" if str(target).isdigit()
                    else f"/ujian/soal/{position}")


@router.put("/ujian/jawaban/{item_id}", include_in_schema=False)
async def exam_save(request: Request, item_id: RowId, body: AnswerUpdate,
                    clock: ClockDep) -> JSONResponse:
    reported = request.headers.get("x-save-failures", "0")
    token = request.cookies.get(TAKER_COOKIE, "")
    work = save_work(request, token, item_id, body, clock.now(), _seat(request),
                     failures=int(reported) if reported.isdigit() and len(reported) < 7 else 0)
    return json_response(await request.app.state.save_batcher.submit(work, token))


@router.get("/ujian/status", include_in_schema=False)
async def exam_status(request: Request, clock: ClockDep) -> JSONResponse:
    return await status_response(request, lambda db: cookie_lookup_json(request, db),
                                 clock.now(), request.cookies.get(TAKER_COOKIE, ""))


@router.get("/ujian/peristiwa", include_in_schema=False)
async def exam_events(request: Request, clock: ClockDep) -> Response:
    """Server-sent events for the taker's page: ``status`` (as ``/ujian/status`` answers)
    now and whenever the attempt's state, section or deadlines change: a pause shows within
    about a second (``app.delivery.watch``). Ends after a few minutes; the page reconnects."""
    def first(db: Session) -> tuple[int, int, watch.Mark, dict[str, Any]]:
        # without a valid cookie this is a page like the others: off to the login (the
        # browser's EventSource then gives up, and the page's poll takes the taker there)
        attempt = cookie_attempt(request, db)
        mark, payload = watch.state_of(db, attempt.id, clock.now())
        return attempt.id, attempt.session_id, mark, payload
    attempt_id, session_id, mark, payload = await in_transaction(request, first, write=False)
    watcher = watch.watch_of(request.app)

    async def events():
        queue = watcher.subscribe(attempt_id, session_id, mark)
        try:
            # a room's pages reconnect spread over a second, not all in the same instant
            yield f"retry: {1000 + random.randrange(1000)}\n\n"  # noqa: S311 - jitter
            yield watch.sse(payload)
            ends = time.monotonic() + watch.STREAM_MAX_S
            while (left := ends - time.monotonic()) > 0:
                try:
                    yield watch.sse(await asyncio.wait_for(
                        queue.get(), min(watch.KEEPALIVE_S, left)))
                except TimeoutError:
                    yield ": -\n\n"
        finally:
            watcher.unsubscribe(attempt_id, queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


@router.post("/ujian/bagian-berikut", include_in_schema=False)
def exam_next_section(request: Request, attempt: PageAttempt, db: DbSession,
                      clock: ClockDep) -> Response:
    # on a refusal the page reloads and shows where the taker really is
    with contextlib.suppress(attempts.TakerError):
        timing.next_section(db, attempt=attempt, now=clock.now())
    return redirect(request, "/ujian")


@router.post("/ujian/selesai", include_in_schema=False)
async def exam_submit(request: Request, clock: ClockDep,
                      reason: Annotated[str, Form(max_length=20)] = "taker") -> Response:
    """Hand in. Through the save batcher: when time runs out, every page in the room posts
    this in the same second, and one commit per hand-in made the last of 2,000 wait 30 s."""
    def work(db: Session) -> None:
        attempt = cookie_attempt(request, db)
        timing.submit(db, attempt=attempt, score=False,  # the sweeper scores it
                        reason="time" if reason == "time" else "taker",
                        actor=f"attempt:{attempt.id}", now=clock.now())
    try:
        await request.app.state.save_batcher.submit(work, request.cookies.get(TAKER_COOKIE, ""))
    except attempts.TakerError as exc:
        if exc.status != 409:
            raise
        # not started: the page shows the instructions again
    return redirect(request, "/ujian")


@router.post("/ujian/keluar", include_in_schema=False)
def exam_logout(request: Request, db: DbSession, clock: ClockDep) -> Response:
    attempts.logout(db, token=request.cookies.get(TAKER_COOKIE, ""),
                    secret=request.app.state.secret, now=clock.now())
    response = redirect(request, "/")
    response.delete_cookie(TAKER_COOKIE, httponly=True, samesite="lax",
                           secure=cookie_secure(request))
    return response


@router.get("/ujian/media/{version_id}/{name}", include_in_schema=False)
def exam_media(version_id: RowId, name: str, attempt: PageAttempt, db: DbSession) -> Response:
    """Images that an item of this taker's own form shows, once its section is visible, and
    nothing else: any other name is the same 404 as a missing file (security review #13:
    every image of the bank version was served, including those of items in other forms)."""
    if not content.form_shows_media(db, attempt=attempt, version_id=version_id, name=name):
        raise HTTPException(status_code=404)
    return media_response(db, version_id, name)
