"""Who is the test taker of this request: a bearer token (API) or the taker cookie (pages).
Either way it is the access token issued at login, stored only as an HMAC, and replaced by the
next login, so a seat that was moved to another computer can no longer save."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db import DbSession
from app.delivery import seb
from app.delivery.attempts import TakerError, attempt_for_access_token
from app.delivery.models import Attempt

TAKER_COOKIE = "cact_taker"
SEAT_COOKIE = "cact_seat"


class TakerLoginRequired(Exception):
    """No valid taker cookie: the page sends the browser to the login page."""


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def bearer_lookup(request: Request, db: Session) -> Attempt:
    """The attempt of the bearer token, loaded in the caller's transaction."""
    attempt = attempt_for_access_token(db, token=bearer_token(request),
                                       secret=request.app.state.secret)
    if attempt is None:
        raise TakerError(401, "taker.error_login_again",
                         "missing or expired access token; log in again")
    seb.check(request, db, attempt.session_id)
    return attempt


def cookie_attempt(request: Request, db: DbSession) -> Attempt:
    attempt = attempt_for_access_token(db, token=request.cookies.get(TAKER_COOKIE, ""),
                                       secret=request.app.state.secret)
    if attempt is None:
        raise TakerLoginRequired()
    seb.check(request, db, attempt.session_id)
    return attempt


def cookie_lookup_json(request: Request, db: Session) -> Attempt:
    """For the page's own JSON calls: a 401 the script understands instead of a redirect."""
    attempt = attempt_for_access_token(db, token=request.cookies.get(TAKER_COOKIE, ""),
                                       secret=request.app.state.secret)
    if attempt is None:
        raise TakerError(401, "taker.error_login_again", "log in again")
    seb.check(request, db, attempt.session_id)
    return attempt


PageAttempt = Annotated[Attempt, Depends(cookie_attempt)]
