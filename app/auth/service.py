"""Accounts, staff logins (throttled, see app/auth/throttle.py) and browser sessions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import audit
from app.auth import throttle
from app.auth.models import Role, User, WebSession
from app.auth.security import (
    dummy_verify,
    hash_password,
    random_token,
    sha256_hex,
    verify_password,
)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
TOUCH_EVERY = timedelta(seconds=60)


class AccountError(ValueError):
    """A bad account request; ``message_key`` is a locale key for the user-facing text."""

    def __init__(self, message_key: str, detail: str) -> None:
        super().__init__(detail)
        self.message_key = message_key


@dataclass
class LoginOutcome:
    user: User | None
    retry_after_s: int = 0  # > 0: refused by the throttle, password not checked

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


def validate_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise AccountError(
            "error.username_invalid",
            "username must be 2-64 characters: lower-case letters, digits, dot, dash, underscore",
        )
    return name


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            "error.password_short", f"password must have at least {MIN_PASSWORD_LENGTH} characters"
        )


def create_user(
    db: Session,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    role: Role,
    full_name: str = "",
    actor: str,
    now: datetime,
) -> User:
    """Create an admin or proctor account (audited). Raises AccountError on bad input."""
    name = validate_username(username)
    validate_password(password)
    if db.scalar(select(User.id).where(User.username == name)) is not None:
        raise AccountError("error.username_taken", f"user {name!r} already exists")
    user = User(
        username=name,
        full_name=full_name.strip(),
        role=Role(role),
        password_hash=hash_password(hasher, password),
        created_at=now,
    )
    db.add(user)
    db.flush()
    audit.record(db, actor=actor, action="user.create", target=f"user:{name}", now=now,
                 data={"role": user.role.value})
    return user


def set_password(
    db: Session, *, hasher: PasswordHasher, user: User, password: str, actor: str, now: datetime
) -> None:
    validate_password(password)
    user.password_hash = hash_password(hasher, password)
    # A new password ends every open session of that account.
    db.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit.record(db, actor=actor, action="user.set_password", target=f"user:{user.username}",
                 now=now)


def set_active(
    db: Session, *, user: User, active: bool, actor: User, reason: str, now: datetime
) -> None:
    """Enable or disable an account (audited). Disabling ends its sessions at once; an admin
    cannot disable their own account, so the last admin cannot lock everyone out by mistake."""
    if user.id == actor.id and not active:
        raise AccountError("error.cannot_disable_self", "you cannot disable your own account")
    if user.is_active == active:
        return
    user.is_active = active
    if not active:
        db.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit.record(db, actor=f"user:{actor.username}",
                 action="user.enable" if active else "user.disable",
                 target=f"user:{user.username}", reason=reason, now=now)


@dataclass
class LoginCheck:
    """What a staff login needs before the password is checked, read in a read-only
    transaction: the password is verified afterwards with no transaction open (argon2 takes
    ~0.2 s, and inside a write transaction it held the SQLite write slot that whole time)."""

    name: str
    retry_after_s: int = 0
    user_id: int | None = None
    password_hash: str | None = None
    is_active: bool = False


def normalize_username(username: str) -> str:
    return username.strip().lower()[:64]


def check_login(db: Session, *, username: str, client_addr: str, now: datetime) -> LoginCheck:
    name = normalize_username(username)
    wait = throttle.wait_seconds(db, identifier=name, client_addr=client_addr, now=now)
    if wait:
        return LoginCheck(name, retry_after_s=wait)
    user = db.scalar(select(User).where(User.username == name))
    if user is None:
        return LoginCheck(name)
    return LoginCheck(name, user_id=user.id, password_hash=user.password_hash,
                      is_active=user.is_active)


def password_matches(hasher: PasswordHasher, check: LoginCheck, password: str) -> bool:
    """The argon2 verification (a dummy one for an unknown name, so timing tells nothing)."""
    if check.password_hash is None:
        dummy_verify(hasher, password)
        return False
    return verify_password(hasher, check.password_hash, password) and check.is_active


def record_failure(db: Session, *, check: LoginCheck, client_addr: str, now: datetime) -> None:
    """The throttle count and audit row of a wrong password (run through the group commit)."""
    throttle.register_failure(db, identifier=check.name, client_addr=client_addr, now=now)
    audit.record(db, actor=f"addr:{client_addr}", action="auth.login_failed",
                 target=f"user:{check.name}", now=now,
                 data={"known_user": check.user_id is not None})


def complete_login(db: Session, *, check: LoginCheck, client_addr: str, now: datetime,
                   new_hash: str | None = None) -> User | None:
    """The write of a successful login; None if the account went away or was disabled (or
    its password changed) between the check and now."""
    user = db.get(User, check.user_id)
    if user is None or not user.is_active or user.password_hash != check.password_hash:
        return None
    if new_hash:
        user.password_hash = new_hash
    user.last_login_at = now
    throttle.clear_success(db, identifier=check.name, client_addr=client_addr)
    audit.record(db, actor=f"user:{user.username}", action="auth.login",
                 target=f"user:{check.name}", now=now, data={"addr": client_addr})
    return user


def authenticate(
    db: Session,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    client_addr: str,
    now: datetime,
) -> LoginOutcome:
    """All of a staff login in the caller's transaction (the CLI and tests; the login page
    runs the same steps with the password check outside any transaction)."""
    check = check_login(db, username=username, client_addr=client_addr, now=now)
    if check.retry_after_s:
        return LoginOutcome(None, retry_after_s=check.retry_after_s)
    if not password_matches(hasher, check, password):
        record_failure(db, check=check, client_addr=client_addr, now=now)
        return LoginOutcome(None)
    stale = check.password_hash is not None and hasher.check_needs_rehash(check.password_hash)
    new_hash = hash_password(hasher, password) if stale else None
    return LoginOutcome(complete_login(db, check=check, client_addr=client_addr, now=now,
                                       new_hash=new_hash))


# -- browser sessions ---------------------------------------------------------------------------


def start_session(
    db: Session,
    *,
    user: User,
    now: datetime,
    absolute: timedelta,
    client_addr: str,
    user_agent: str,
    replaces: str | None = None,
) -> str:
    """Open a session and return the cookie value. The old session (if the browser had one) is
    deleted: the id is always rotated at login, which defeats session fixation."""
    if replaces:
        db.execute(delete(WebSession).where(WebSession.id == sha256_hex(replaces)))
    db.execute(delete(WebSession).where(WebSession.expires_at <= now))
    token = random_token(32)
    db.add(
        WebSession(
            id=sha256_hex(token),
            user_id=user.id,
            csrf_token=random_token(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + absolute,
            client_addr=client_addr[:64],
            user_agent=user_agent[:300],
        )
    )
    db.flush()
    return token


def load_session(
    db: Session, *, token: str, now: datetime, idle: timedelta, touch: Any = None
) -> tuple[WebSession, User] | None:
    """The live session for a cookie value, or None when unknown, expired or idle too long."""
    row = db.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.id == sha256_hex(token))
    ).first()
    if row is None:
        return None
    web_session, user = row
    idle_too_long = now - web_session.last_seen_at >= idle
    if now >= web_session.expires_at or idle_too_long or not user.is_active:
        return None
    if now - web_session.last_seen_at >= TOUCH_EVERY:
        if touch is None:
            db.execute(update(WebSession).where(WebSession.id == web_session.id)
                       .values(last_seen_at=now))
        else:
            touch(web_session.id, now)
    return web_session, user


def touch_session(database: Any, session_id: str, now: datetime) -> None:
    """Record activity in a transaction of its own (read requests never write). Best effort:
    if the database is busy the session keeps its previous last-seen time for now."""
    try:
        with database.transaction() as db:
            db.execute(update(WebSession).where(WebSession.id == session_id)
                       .values(last_seen_at=now))
    except OperationalError:
        pass


def end_session(db: Session, *, token: str) -> None:
    db.execute(delete(WebSession).where(WebSession.id == sha256_hex(token)))
