"""Append-only, hash-chained audit log.

Each row stores ``prev_hash`` (the previous row's hash) and ``hash`` =
SHA-256(prev_hash || canonical JSON of its own content, id included). Editing a row breaks its
own hash; deleting one breaks the id sequence and the next row's link; both are reported by
:func:`verify` with the first bad row. Database triggers (see the migration) refuse UPDATE and
DELETE, so only someone going around the application can alter history, and the chain shows it.
Writers are serialised (PostgreSQL advisory lock; SQLite's single write lock) so the chain never
forks; the unique ``prev_hash`` constraint makes a fork impossible even if that were bypassed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import String, Table, Text, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime

GENESIS_HASH = "0" * 64
_PG_LOCK_KEY = 0x43414354  # "CACT"


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(120))  # "user:admin", "taker:<nip>", "cli", "system"
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_hash(event: AuditEvent) -> str:
    """SHA-256(prev_hash || canonical JSON of the row's own content, id included)."""
    body = json.dumps(
        {
            "id": event.id,
            "at": _timestamp(event.at),
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "reason": event.reason,
            "data": event.data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((event.prev_hash + body).encode("utf-8")).hexdigest()


# Built once: a login's audit row is written by every taker at 08:00 (a statement built per
# call is built and keyed again each time).
_TAIL = select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
_INSERT = insert(cast(Table, AuditEvent.__table__))


def record(
    db: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    target: str = "",
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the action
    it describes, so the log never claims something that did not happen)."""
    payload = json.loads(json.dumps(data or {}, default=str))  # plain JSON values only
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = db.execute(_TAIL).first()
    new_id, prev_hash = (last.id + 1, last.hash) if last else (1, GENESIS_HASH)
    now = now.astimezone(UTC)
    event = AuditEvent(
        id=new_id,
        at=now,
        actor=actor,
        action=action,
        target=target,
        reason=reason,
        data=payload,
        prev_hash=prev_hash,
    )
    event.hash = content_hash(event)
    # A plain INSERT, not the ORM's unit of work: at 08:00 a room's logins append their rows
    # one after another in one group commit (app/delivery/batching.py), and the row is never
    # changed again. The event returned is not attached to the session.
    db.execute(_INSERT, {
        "id": event.id, "at": event.at, "actor": event.actor, "action": event.action,
        "target": event.target, "reason": event.reason, "data": event.data,
        "prev_hash": event.prev_hash, "hash": event.hash})
    return event


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_hash: str
    bad_id: int | None = None
    problem: str = ""


def verify(db: Session) -> VerifyResult:
    """Walk the whole chain in id order; stop at the first row that does not fit."""
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
    rows = db.execute(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=500))
    for event in rows.scalars():
        if event.id != expected_id:
            return VerifyResult(
                False, checked, expected_prev, event.id,
                f"row {expected_id} to {event.id - 1} missing before row {event.id}",
            )
        if event.prev_hash != expected_prev:
            return VerifyResult(
                False, checked, expected_prev, event.id,
                f"row {event.id} does not link to row {event.id - 1} (prev_hash differs)",
            )
        if content_hash(event) != event.hash:
            return VerifyResult(
                False, checked, expected_prev, event.id,
                f"row {event.id} was altered (content does not match its hash)",
            )
        expected_prev, expected_id, checked = event.hash, event.id + 1, checked + 1
    return VerifyResult(True, checked, expected_prev)


def verify_against(db: Session, *, head: str | None = None, count: int | None = None
                   ) -> VerifyResult:
    """:func:`verify`, then against an anchor noted earlier (on the session close sheet, in a
    backup manifest): the log must still hold at least ``count`` rows and the row that was the
    head then (``head``, with ``count`` the row it was). A chain that is intact but shorter, or
    that no longer holds the noted head, was truncated or rewritten from that point: the
    chain alone cannot tell, since deleting the newest rows leaves a valid chain."""
    result = verify(db)
    if not result.ok:
        return result
    if count is not None and result.checked < count:
        return VerifyResult(
            False, result.checked, result.head_hash, None,
            f"the log has {result.checked} rows, fewer than the {count} noted earlier: "
            f"rows {result.checked + 1} to {count} were removed (truncation)")
    if head:
        query = select(AuditEvent.id).where(AuditEvent.hash == head.strip().lower())
        found = db.scalar(query.order_by(AuditEvent.id).limit(1))
        if found is None:
            return VerifyResult(
                False, result.checked, result.head_hash, None,
                "the head hash noted earlier is in no row of the log: the rows from that "
                "point were removed or replaced")
        if count is not None and found != count:
            return VerifyResult(
                False, result.checked, result.head_hash, None,
                f"the head hash noted earlier is row {found}, not row {count} as noted")
    return result
