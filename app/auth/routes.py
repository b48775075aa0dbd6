"""Staff login and logout pages, and the language switch."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.auth import gate, service, throttle
from app.auth.deps import AdminUser, ClockDep, OptionalStaff
from app.auth.models import Role, User
from app.auth.security import hash_password
from app.db import DbSession, RowId, in_transaction
from app.web import (
    LANG_COOKIE,
    LANGUAGES,
    SESSION_COOKIE,
    cookie_secure,
    redirect,
    render,
    safe_next,
)

router = APIRouter()


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def home_for(role: Role) -> str:
    return "/admin" if role == Role.admin else "/proctor"


@router.get("/login", include_in_schema=False)
def login_page(request: Request, user: OptionalStaff, next: str = "") -> Response:
    if user is not None:
        return redirect(request, safe_next(next, home_for(user.role)))
    return render(request, "auth/login.html", next=safe_next(next, ""), username="", error=None)


@router.post("/login", include_in_schema=False)
async def login_submit(
    request: Request,
    clock: ClockDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Read the throttle and the account, verify the password with no transaction open, then
    write either the failure (group commit) or the session (see app/auth/gate.py)."""
    settings = request.app.state.settings
    addr, now = client_addr(request), clock.now()

    def page(status: int, error: tuple[str, dict], headers: dict | None = None) -> Response:
        return render(request, "auth/login.html", status_code=status, headers=headers,
                      next=safe_next(next, ""), username=username[:64], error=error)

    try:
        check = await gate.read_past_throttle(
            request, action="auth.login_throttled",
            identifier=service.normalize_username(username), client_addr=addr,
            read=lambda db: service.check_login(db, username=username, client_addr=addr,
                                                now=now))
    except gate.Throttled as exc:
        return page(429, ("error.login_throttled", {"seconds": exc.retry_after_s}),
                    {"Retry-After": str(exc.retry_after_s)})
    hasher = request.app.state.password_hasher
    ok = await gate.in_password_slot(request.app, service.password_matches, hasher, check,
                                     password)
    if not ok:
        try:
            await gate.record(request, lambda db: service.record_failure(
                db, check=check, client_addr=addr, now=now))
        except Exception:  # noqa: BLE001 - not counted, so not answered as a plain failure
            return page(503, ("error.login_busy", {}), {"Retry-After": "2"})
        return page(401, ("error.login_failed", {}))
    new_hash = None
    if hasher.check_needs_rehash(check.password_hash):
        new_hash = await gate.in_password_slot(request.app, hash_password, hasher, password)

    def complete(db: Session) -> tuple[Role, str] | None:
        user = service.complete_login(db, check=check, client_addr=addr, now=now,
                                      new_hash=new_hash)
        if user is None:
            return None
        return user.role, service.start_session(
            db, user=user, now=now, absolute=timedelta(hours=settings.session_absolute_hours),
            client_addr=addr, user_agent=request.headers.get("user-agent", ""),
            replaces=request.cookies.get(SESSION_COOKIE))

    done = await in_transaction(request, complete)
    if done is None:  # disabled or password changed between the check and now
        return page(401, ("error.login_failed", {}))
    role, token = done
    response = redirect(request, safe_next(next, home_for(role)))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, db: DbSession, clock: ClockDep, user: OptionalStaff) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(db, token=token)
    if user is not None:
        audit.record(db, actor=f"user:{user.username}", action="auth.logout",
                     target=f"user:{user.username}", now=clock.now())
    response = redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=cookie_secure(request))
    return response


@router.post("/lang", include_in_schema=False)
def switch_language(
    request: Request,
    lang: Annotated[str, Form()] = "id",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    response = redirect(request, safe_next(next, "/"))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax",
                            secure=cookie_secure(request), path="/")
    return response


# -- account management (admin) -----------------------------------------------------------------

admin_router = APIRouter(prefix="/admin")


def _users_page(request: Request, db: DbSession, *, status_code: int = 200, **context) -> Response:
    users = db.scalars(select(User).order_by(User.role, User.username))
    defaults = {"form": {"username": "", "full_name": "", "role": "proctor"}, "error": None,
                "created": None, "password_reset": None, "cleared": None}
    locks = throttle.active_locks(db, now=request.app.state.clock.now())
    return render(request, "admin/users.html", status_code=status_code, users=list(users),
                  locks=locks, **{**defaults, **context})


@admin_router.post("/login-locks/clear", include_in_schema=False)
def login_locks_clear(
    request: Request,
    db: DbSession,
    clock: ClockDep,
    user: AdminUser,
    identifier: Annotated[str, Form(max_length=200)] = "",
    address: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Clear the login throttle of an account or NIP (every address) or of an address."""
    if bool(identifier) == bool(address):
        raise HTTPException(status_code=400, detail="give an identifier or an address")
    removed = throttle.clear(db, actor=f"user:{user.username}", now=clock.now(),
                             identifier=identifier or None, address=address or None)
    gate.lock_cache(request.app).forget()  # other workers follow within two seconds
    return _users_page(request, db, cleared=removed)


@admin_router.get("/users", include_in_schema=False)
def users_page(request: Request, db: DbSession, _user: AdminUser) -> Response:
    return _users_page(request, db)


@admin_router.post("/users", include_in_schema=False)
def users_create(
    request: Request,
    db: DbSession,
    clock: ClockDep,
    user: AdminUser,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1000)],
    role: Annotated[Role, Form()],
    full_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form = {"username": username, "full_name": full_name, "role": role.value}
    try:
        created = service.create_user(
            db, hasher=request.app.state.password_hasher, username=username, password=password,
            role=role, full_name=full_name, actor=f"user:{user.username}", now=clock.now(),
        )
    except service.AccountError as exc:
        return _users_page(request, db, status_code=422, form=form, error=exc.message_key)
    return _users_page(request, db, created=created.username)


def _target_user(db: DbSession, user_id: int) -> User:
    target = db.get(User, user_id)
    if target is None:
        raise HTTPException(status_code=404)
    return target


@admin_router.post("/users/{user_id}/active", include_in_schema=False)
def users_set_active(
    request: Request,
    db: DbSession,
    clock: ClockDep,
    user: AdminUser,
    user_id: RowId,
    active: Annotated[bool, Form()],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    target = _target_user(db, user_id)
    try:
        service.set_active(db, user=target, active=active, actor=user, reason=reason.strip(),
                           now=clock.now())
    except service.AccountError as exc:
        return _users_page(request, db, status_code=422, error=exc.message_key)
    return redirect(request, "/admin/users")


@admin_router.post("/users/{user_id}/password", include_in_schema=False)
def users_reset_password(
    request: Request,
    db: DbSession,
    clock: ClockDep,
    user: AdminUser,
    user_id: RowId,
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    target = _target_user(db, user_id)
    try:
        service.set_password(db, hasher=request.app.state.password_hasher, user=target,
                             password=password, actor=f"user:{user.username}", now=clock.now())
    except service.AccountError as exc:
        return _users_page(request, db, status_code=422, error=exc.message_key)
    return _users_page(request, db, password_reset=target.username)
