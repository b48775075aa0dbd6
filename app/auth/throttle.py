"""Login throttling shared by staff logins (the account name) and taker logins ("nip:NIP").

Two counters per failed attempt, in the database so every worker sees them:

* per identifier *and* client address: 5 free failures, then 1 s, 2 s, 4 s ... capped at
  15 min - this is what stops one machine guessing one password or token;
* per client address, any identifier: 30 free failures, then the same growth and cap - this
  stops one machine trying many accounts.

There is deliberately no counter per identifier from anywhere: an attacker could then lock the
real owner out from another machine just by failing on purpose (security review #13: two
addresses kept a taker at 429 for minutes). Failures at one address never delay a login from
another. A taker whose attempt is already bound to this lab PC's seat cookie is counted under
the seat instead of the address ("seat:..." in place of the address), so failures of others
behind the same address (one NAT, one proxy that does not pass the client address) never keep
them out either. A lock never grows while it lasts (refused
attempts are not counted), so 15 min is the ceiling of any wait; a proctor (for a participant
of their session) or an admin (for anything) clears a lock at once, audited.

Counters are forgotten an hour after the last failure (longer than any lock, so waiting it out
never earns fresh free guesses) and reset by a successful login.

Refused attempts are not written one by one (9,000 audit rows in 40 s from one address was a
finding of the same review): :class:`RefusalTally` counts them in memory and writes one
``*.login_throttled`` audit row per identifier and minute, with the count and the addresses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

from app import audit
from app.auth.models import LoginThrottle

FORGET_AFTER = timedelta(hours=1)  # longer than the longest lock
MAX_LOCK = timedelta(minutes=15)  # the ceiling of any wait
TALLY_WINDOW = timedelta(minutes=1)  # one audit row per identifier and window
MAX_ADDRESSES_NOTED = 20


@dataclass(frozen=True)
class Rule:
    prefix: str
    free_failures: int
    max_lock: timedelta


RULES = (
    Rule("acctip", 5, MAX_LOCK),
    Rule("ip", 30, MAX_LOCK),
)


def _keys(identifier: str, client_addr: str) -> dict[str, str]:
    return {"acctip": f"acctip:{identifier}|{client_addr}", "ip": f"ip:{client_addr}"}


def lock_for(rule: Rule, failures: int) -> timedelta:
    over = failures - rule.free_failures
    if over < 0:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(over, 20)), rule.max_lock)


def seconds_left(until: datetime | None, now: datetime) -> int:
    """Whole seconds (rounded up) until ``until``; 0 when it is not in the future."""
    if until is None or until <= now:
        return 0
    return int((until - now).total_seconds() + 0.999)


def wait_seconds(db: Session, *, identifier: str, client_addr: str, now: datetime) -> int:
    """Seconds the caller must wait before another attempt (0 = may try now)."""
    return look_up(db, identifier=identifier, client_addr=client_addr, now=now)[0]


_LOCKS = select(LoginThrottle.locked_until).where(
    LoginThrottle.key.in_(bindparam("keys", expanding=True)))


def look_up(db: Session, *, identifier: str, client_addr: str, now: datetime
            ) -> tuple[int, bool]:
    """:func:`wait_seconds`, and whether any counter of this identifier or address exists (when
    none does, a successful login has nothing to clear)."""
    rows = db.scalars(_LOCKS, {"keys": list(_keys(identifier, client_addr).values())}).all()
    return max((seconds_left(until, now) for until in rows), default=0), bool(rows)


def register_failure(db: Session, *, identifier: str, client_addr: str, now: datetime) -> None:
    # Forgotten counters are removed here so the table stays as small as the live attack.
    db.execute(delete(LoginThrottle).where(LoginThrottle.window_start < now - FORGET_AFTER))
    keys = _keys(identifier, client_addr)
    existing = {row.key: row for row in db.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(keys.values())))}
    for rule in RULES:
        key = keys[rule.prefix]
        row = existing.get(key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, window_start=now)
            db.add(row)
        if row.locked_until and row.locked_until > now:
            continue  # a refused attempt never reaches here; a race must not extend a lock
        row.failures += 1
        row.window_start = now  # the window is measured from the last failure
        lock = lock_for(rule, row.failures)
        row.locked_until = now + lock if lock else None


def clear_success(db: Session, *, identifier: str, client_addr: str) -> None:
    """A successful login resets its own identifier-and-address counter."""
    db.execute(delete(LoginThrottle).where(
        LoginThrottle.key == _keys(identifier, client_addr)["acctip"]))


# -- staff clearing a lock ------------------------------------------------------------------------


@dataclass
class Lock:
    key: str
    kind: str  # "account" (identifier at one address) or "address"
    identifier: str
    address: str
    failures: int
    wait_s: int


def _parse(row: LoginThrottle, now: datetime) -> Lock:
    prefix, _, rest = row.key.partition(":")
    identifier, address = (rest.rsplit("|", 1) if prefix == "acctip" else ("", rest))
    return Lock(row.key, "address" if prefix == "ip" else "account", identifier, address,
                row.failures, seconds_left(row.locked_until, now))


def active_locks(db: Session, *, now: datetime, identifier: str | None = None,
                 identifier_prefix: str | None = None) -> list[Lock]:
    """Counters locked now (all, those of one identifier, or of identifiers starting with a
    prefix such as "nip:"), longest wait first."""
    query = select(LoginThrottle).where(LoginThrottle.locked_until > now,
                                        LoginThrottle.key.not_like("acct:%"))
    if identifier is not None:
        query = query.where(LoginThrottle.key.like(_escape(f"acctip:{identifier}|") + "%",
                                                   escape="\\"))
    if identifier_prefix is not None:
        query = query.where(LoginThrottle.key.like(_escape(f"acctip:{identifier_prefix}") + "%",
                                                   escape="\\"))
    locks = [_parse(row, now) for row in db.scalars(query)]
    return sorted(locks, key=lambda lock: (-lock.wait_s, lock.key))


def _audit_target(identifier: str) -> str:
    """How the audit log names a throttled identifier: a NIP as it is, a staff account as
    ``user:NAME``."""
    return identifier if identifier.startswith("nip:") else f"user:{identifier}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def clear(db: Session, *, actor: str, now: datetime, identifier: str | None = None,
          address: str | None = None, reason: str = "") -> int:
    """Remove the counters of an identifier (at every address) or of an address (every
    identifier there, and the address's own counter). Audited; returns how many went."""
    if (identifier is None) == (address is None):
        raise ValueError("clear either an identifier or an address")
    if identifier is not None:
        condition = or_(LoginThrottle.key.like(_escape(f"acctip:{identifier}|") + "%",
                                                escape="\\"),
                        LoginThrottle.key == f"acct:{identifier}")
        target = _audit_target(identifier)
    elif address is not None:
        condition = or_(LoginThrottle.key == f"ip:{address}",
                        LoginThrottle.key.like(f"acctip:%|{_escape(address)}", escape="\\"))
        target = f"addr:{address}"
    deleted = db.execute(delete(LoginThrottle).where(condition))
    removed = cast("CursorResult[Any]", deleted).rowcount or 0
    audit.record(db, actor=actor, action="auth.throttle_cleared", target=target, now=now,
                 reason=reason, data={"counters": removed})
    return removed


# -- refused attempts: one audit row per identifier and window ----------------------------------


@dataclass
class _Window:
    started: datetime
    last: datetime
    count: int = 0
    longest_wait_s: int = 0
    addresses: list[str] = field(default_factory=list)

    def add_address(self, client_addr: str) -> None:
        if client_addr not in self.addresses and len(self.addresses) < MAX_ADDRESSES_NOTED:
            self.addresses.append(client_addr)

    def absorb(self, older: _Window) -> None:
        """Take in a window that could not be written yet (its refusals came first)."""
        self.count += older.count
        self.started = min(self.started, older.started)
        self.last = max(self.last, older.last)
        self.longest_wait_s = max(self.longest_wait_s, older.longest_wait_s)
        for client_addr in older.addresses:
            self.add_address(client_addr)


class RefusalTally:
    """Counts refused (throttled) logins in memory; :meth:`take_due` hands out the windows
    that ended, :func:`write` turns them into audit rows. One per process; a refusal costs no
    database write, so a flood of them cannot slow the exam down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}

    def note(self, *, action: str, identifier: str, client_addr: str, wait_s: int,
             now: datetime) -> None:
        with self._lock:
            window = self._windows.get((action, identifier))
            if window is None:
                window = self._windows[(action, identifier)] = _Window(started=now, last=now)
            window.count += 1
            window.last = max(window.last, now)
            window.longest_wait_s = max(window.longest_wait_s, wait_s)
            window.add_address(client_addr)

    def take_due(self, now: datetime, *, everything: bool = False
                 ) -> list[tuple[str, str, _Window]]:
        with self._lock:
            due = [key for key, w in self._windows.items()
                   if everything or now - w.started >= TALLY_WINDOW]
            return [(action, identifier, self._windows.pop((action, identifier)))
                    for action, identifier in due]

    def put_back(self, taken: list[tuple[str, str, _Window]]) -> None:
        """Windows whose audit rows could not be written are kept for the next try."""
        with self._lock:
            for action, identifier, window in taken:
                current = self._windows.get((action, identifier))
                if current is None:
                    self._windows[(action, identifier)] = window
                else:
                    current.absorb(window)


def write(db: Session, taken: list[tuple[str, str, _Window]], *, now: datetime) -> None:
    for action, identifier, window in sorted(taken, key=lambda t: (t[2].started, t[1])):
        target = _audit_target(identifier)
        addresses = window.addresses
        actor = f"addr:{addresses[0]}" if len(addresses) == 1 else "addr:several"
        audit.record(db, actor=actor, action=action, target=target, now=now, data={
            "count": window.count, "first": window.started.isoformat(),
            "last": window.last.isoformat(), "addresses": addresses,
            "longest_wait_s": window.longest_wait_s})
