"""A taker login over HTTP (the login page and the JSON API): the throttle is checked in a
read-only transaction, and a refusal by it writes nothing but a tally (app/auth/gate.py); past
it, the token is checked and the login written through the group commit
(app/delivery/batching.py), a wrong NIP or token counted there as well: at 08:00 a room's
logins share commits with each other and with the first saves instead of queueing one by one
for the write slot, and their audit rows are appended to the chain in the order they run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from app.auth import gate
from app.delivery import attempts, seb
from app.sessions.models import Participant, TestSession

T = TypeVar("T")


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(request: Request, *, nip: str, token: str, workstation: str,
                then: Callable[[Session, attempts.LoginResult], T]) -> T:
    """Log in and run ``then(db, result)`` in the login's transaction. Raises TakerError."""
    app = request.app
    addr, now, secret = client_addr(request), app.state.clock.now(), app.state.secret

    def read(db: Session) -> attempts.LoginCheck:
        return attempts.check_login(db, nip=nip, workstation=workstation, client_addr=addr,
                                    now=now)

    try:
        # A login from the seat its attempt is bound to is counted under the seat: it always
        # asks the database.
        check = await gate.read_past_throttle(
            request, action="taker.login_throttled",
            identifier=f"nip:{attempts.normalize_nip(nip)}", client_addr=addr, read=read,
            cacheable=not attempts.is_cookie_seat(workstation))
    except gate.Throttled as exc:
        raise attempts.TakerError(429, "taker.error_throttled", "too many failed logins",
                                  exc.retry_after_s) from None

    def write(db: Session) -> Any:
        def admit(session: TestSession, participant: Participant) -> None:
            seb.check_login(request, db, session=session, nip=participant.nip,
                            client_addr=addr, now=now)

        result = attempts.login(db, nip=nip, token=token, workstation=workstation,
                                client_addr=addr, secret=secret, now=now, check=check,
                                admit=admit)
        return then(db, result)

    try:
        return await app.state.save_batcher.submit(write, f"login:{nip}")
    except attempts.TakerError as exc:
        if exc.key != "taker.error_storage":
            raise
        # The database could not store the login (locked past the busy timeout, disk full):
        # nothing of it was written, so the taker simply tries again.
        raise attempts.TakerError(503, "taker.error_login_busy",
                                  "the server is busy; try again in a few seconds",
                                  retry_after=2) from None
