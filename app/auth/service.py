"""Accounts, logins with throttling, and browser sessions.

Throttling keeps three counters in the database (so every worker sees them):

* per account *and* client address: 5 free failures, then an exponentially growing wait
  (1 s, 2 s, 4 s ... capped at 15 min) - this is what stops one machine guessing one password;
* per client address, all accounts: 30 free failures, then the same growth, capped at 15 min;
* per account from anywhere: 10 free failures, then a wait capped at 60 s - a distributed
  attack is slowed, but the real owner is never locked out for more than a minute.

Counters are forgotten an hour after the last failure (longer than any lock, so waiting out a
lock never earns fresh free guesses) and reset by a successful login.
While a counter is locked, attempts are refused without checking the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import audit
from app.auth.models import LoginThrottle, Role, User, WebSession
from app.auth.security import (
    dummy_verify,
    hash_password,
    random_token,
    sha256_hex,
    verify_password,
)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
FORGET_AFTER = timedelta(hours=1)  # longer than the longest lock, so waiting it out never resets the count
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class ThrottleRule:
    prefix: str
    free_failures: int
    max_lock: timedelta


RULES = (
    ThrottleRule("acctip", 5, timedelta(minutes=15)),
    ThrottleRule("ip", 30, timedelta(minutes=15)),
    ThrottleRule("acct", 10, timedelta(seconds=60)),
)


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


def _throttle_keys(username: str, client_addr: str) -> dict[str, str]:
    return {
        "acctip": f"acctip:{username}|{client_addr}",
        "ip": f"ip:{client_addr}",
        "acct": f"acct:{username}",
    }


def _lock_for(rule: ThrottleRule, failures: int) -> timedelta:
    over = failures - rule.free_failures
    if over < 0:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(over, 20)), rule.max_lock)


def throttle_wait(db: Session, *, username: str, client_addr: str, now: datetime) -> int:
    """Seconds the caller must wait before another attempt (0 = may try now)."""
    keys = list(_throttle_keys(username, client_addr).values())
    wait = timedelta(0)
    for row in db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))):
        if row.locked_until and row.locked_until > now:
            wait = max(wait, row.locked_until - now)
    return int(wait.total_seconds() + 0.999)


def register_failure(db: Session, *, username: str, client_addr: str, now: datetime) -> None:
    # Forgotten counters are removed here so the table stays as small as the live attack.
    db.execute(delete(LoginThrottle).where(LoginThrottle.window_start < now - FORGET_AFTER))
    keys = _throttle_keys(username, client_addr)
    existing = {
        row.key: row
        for row in db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys.values())))
    }
    for rule in RULES:
        key = keys[rule.prefix]
        row = existing.get(key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now)
            db.add(row)
        elif now - row.window_start > FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.window_start = now  # the window is measured from the last failure
        lock = _lock_for(rule, row.failures)
        row.locked_until = now + lock if lock else None


def clear_failures(db: Session, *, username: str, client_addr: str) -> None:
    keys = _throttle_keys(username, client_addr)
    db.execute(delete(LoginThrottle).where(LoginThrottle.key.in_([keys["acctip"], keys["acct"]])))


def authenticate(
    db: Session,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    client_addr: str,
    now: datetime,
) -> LoginOutcome:
    """Check a staff login under the throttle; every failure and refusal is audited."""
    name = username.strip().lower()[:64]
    wait = throttle_wait(db, username=name, client_addr=client_addr, now=now)
    if wait:
        audit.record(db, actor=f"addr:{client_addr}", action="auth.login_throttled",
                     target=f"user:{name}", now=now, data={"retry_after_s": wait})
        return LoginOutcome(None, retry_after_s=wait)
    user = db.scalar(select(User).where(User.username == name))
    if user is None:
        dummy_verify(hasher, password)
        ok = False
    else:
        ok = verify_password(hasher, user.password_hash, password) and user.is_active
    if not ok:
        register_failure(db, username=name, client_addr=client_addr, now=now)
        audit.record(db, actor=f"addr:{client_addr}", action="auth.login_failed",
                     target=f"user:{name}", now=now,
                     data={"known_user": user is not None})
        return LoginOutcome(None)
    assert user is not None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(hasher, password)
    user.last_login_at = now
    clear_failures(db, username=name, client_addr=client_addr)
    audit.record(db, actor=f"user:{user.username}", action="auth.login", target=f"user:{name}",
                 now=now, data={"addr": client_addr})
    return LoginOutcome(user)


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
    if now >= web_session.expires_at or now - web_session.last_seen_at >= idle or not user.is_active:
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
