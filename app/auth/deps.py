"""FastAPI dependencies that load the logged-in staff member and enforce roles on every route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.models import Role, User
from app.clock import Clock
from app.web import SESSION_COOKIE, check_csrf


class LoginRequired(Exception):
    """No valid staff session; HTML gets a redirect to the login page, the API a 401."""


class Forbidden(Exception):
    """Logged in, but this role may not do this; rendered as 403."""


def get_clock(request: Request) -> Clock:
    return request.app.state.clock


ClockDep = Annotated[Clock, Depends(get_clock)]


@dataclass(frozen=True)
class StaffView:
    """Plain copy of the logged-in account for templates and error pages, which may render
    after the request's transaction was rolled back (ORM objects are expired by then)."""

    id: int
    username: str
    full_name: str
    role: Role


async def load_staff(request: Request, clock: ClockDep) -> User | None:
    """The staff member of this request, or None. Also leaves on request.state the plain
    values pages need: ``staff`` (StaffView) and ``session_csrf`` (the session's CSRF token).

    It reads in a short transaction of its own, and only when a session cookie is present, so
    requests without one (every test taker's) neither touch the database nor take a worker
    thread here. The returned account is detached: routes read it, services that change an
    account load their own copy."""
    if hasattr(request.state, "staff_user"):
        return request.state.staff_user
    request.state.staff_user = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        loaded = await run_in_threadpool(_load_session, request, token, clock.now())
        if loaded:
            web_session, user = loaded
            request.state.staff_user = user
            request.state.staff = StaffView(user.id, user.username, user.full_name, user.role)
            request.state.session_csrf = web_session.csrf_token
    return request.state.staff_user


def _load_session(request: Request, token: str, now):
    database = request.app.state.db
    settings = request.app.state.settings
    with database.transaction(write=False) as db:
        return service.load_session(
            db, token=token, now=now, idle=timedelta(minutes=settings.session_idle_minutes),
            touch=lambda sid, at: service.touch_session(database, sid, at))


async def csrf_protect(request: Request,
                       _user: Annotated[User | None, Depends(load_staff)]) -> None:
    """App-wide: every state-changing HTML request must carry the CSRF token."""
    await check_csrf(request)


def require_role(*roles: Role):
    def dependency(user: Annotated[User | None, Depends(load_staff)]) -> User:
        if user is None:
            raise LoginRequired()
        if user.role not in roles:
            raise Forbidden()
        return user

    dependency.__name__ = "require_" + "_or_".join(r.value for r in roles)
    return dependency


def actor(user: User) -> str:
    """How the audit log names a staff member."""
    return f"user:{user.username}"


OptionalStaff = Annotated[User | None, Depends(load_staff)]
AdminUser = Annotated[User, Depends(require_role(Role.admin))]
StaffUser = Annotated[User, Depends(require_role(Role.admin, Role.proctor))]
