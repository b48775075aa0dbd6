"""Test sessions: creating one (which freezes the bank versions it uses), its states, and the
roster with each participant's login token.

States: scheduled -> open <-> paused -> closed (final). Only an open session lets takers in;
closing hands in every attempt still running.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint
from app.assembly.service import blueprint_version_ids
from app.auth.models import Role, User
from app.auth.security import decrypt_token, encrypt_token, keyed_digest, new_participant_token
from app.bank.parsed import ImportFailed, Problem
from app.bank.service import freeze_versions
from app.delivery.attempts import TOKEN_PURPOSE, submit_all_active
from app.delivery.models import (
    JobGroup,
    Participant,
    ProctorAssignment,
    RosterEntry,
    SessionState,
    TestSession,
)

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
TRANSITIONS = {
    "open": ({SessionState.scheduled, SessionState.paused}, SessionState.open),
    "pause": ({SessionState.open}, SessionState.paused),
    "close": ({SessionState.scheduled, SessionState.open, SessionState.paused},
              SessionState.closed),
}


class SessionError(ValueError):
    """A refused session change; the message says what and how to fix it."""


def create_session(db: Session, *, code: str, name: str, room: str, blueprint_code: str,
                   starts_at: datetime, ends_at: datetime, proctors: list[str], actor: str,
                   now: datetime) -> TestSession:
    code = code.strip().upper()
    if not CODE_RE.match(code):
        raise SessionError(f"session code {code!r} must be 2-32 characters of A-Z, 0-9, '-', '_'")
    if db.scalar(select(TestSession.id).where(TestSession.code == code)) is not None:
        raise SessionError(f"session {code} already exists; choose another code")
    blueprint = db.scalar(select(Blueprint).where(Blueprint.code == blueprint_code))
    if blueprint is None:
        raise SessionError(f"blueprint {blueprint_code!r} does not exist; import it first")
    if ends_at <= starts_at:
        raise SessionError("the session must end after it starts")
    users = []
    for username in proctors:
        user = db.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None or user.role not in (Role.proctor, Role.admin):
            raise SessionError(f"{username!r} is not a proctor or admin account")
        users.append(user)
    session = TestSession(code=code, name=name.strip() or code, room=room.strip(),
                          blueprint_id=blueprint.id, starts_at=starts_at, ends_at=ends_at,
                          state=SessionState.scheduled, settings={}, created_at=now)
    db.add(session)
    db.flush()
    db.add_all(ProctorAssignment(session_id=session.id, user_id=u.id) for u in users)
    # A bank version used by a session never changes again.
    freeze_versions(db, blueprint_version_ids(db, blueprint.id))
    audit.record(db, actor=actor, action="session.create", target=f"session:{code}", now=now,
                 data={"blueprint": blueprint_code, "proctors": [u.username for u in users]})
    return session


def change_state(db: Session, *, session: TestSession, action: str, actor: str,
                 now: datetime, reason: str = "") -> int:
    """open / pause / close; returns how many attempts closing handed in."""
    allowed, target = TRANSITIONS[action]
    if session.state not in allowed:
        raise SessionError(f"session {session.code} is {session.state.value}; it cannot {action}")
    handed_in = 0
    session.state = target
    session.paused_at = now if target == SessionState.paused else None
    if target == SessionState.closed:
        handed_in = submit_all_active(db, session_id=session.id, reason="session_closed",
                                      actor=actor, now=now)
    audit.record(db, actor=actor, action=f"session.{action}", target=f"session:{session.code}",
                 reason=reason, now=now, data={"handed_in": handed_in})
    return handed_in


# -- roster -------------------------------------------------------------------------------------

HEADERS = {  # accepted header -> field
    "nip": "nip", "name": "name", "nama": "name", "job_group": "job_group",
    "kelompok_jabatan": "job_group", "grade": "grade", "jenjang": "grade",
    "position": "position", "jabatan": "position", "unit": "unit", "unit_kerja": "unit",
}
REQUIRED = ("nip", "name", "job_group")


@dataclass
class RosterRow:
    nip: str
    name: str
    job_group: str
    grade: str
    position: str
    unit: str


def parse_roster(data: bytes, *, source: str) -> list[RosterRow]:
    """Read a roster CSV; every problem is reported by row and column, all at once."""
    problems: list[Problem] = []

    def problem(row: int, column: str, message: str, nip: str = "") -> None:
        location = f"row {row}" + (f", column {column}" if column else "")
        problems.append(Problem(source, location, nip, message))

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed([Problem(source, "row 1", "", "not UTF-8 text; save the sheet as "
                                    "'CSV UTF-8'")]) from None
    try:
        dialect = csv.Sniffer().sniff(text[:2048], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader, [])]
    fields = [HEADERS.get(h) for h in header]
    for number, column in enumerate(header, 1):
        if fields[number - 1] is None:
            problem(1, column or f"#{number}", "unknown column; use nip, name, job_group, grade, "
                    "position, unit (or nip, nama, kelompok_jabatan, jenjang, jabatan, "
                    "unit_kerja)")
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        problem(1, "", f"missing column(s): {', '.join(missing)}")
        raise ImportFailed(problems)
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    groups = {g.value for g in JobGroup}
    for number, values in enumerate(reader, 2):
        if not any(v.strip() for v in values):
            continue
        record = {f: (values[i].strip() if i < len(values) else "")
                  for i, f in enumerate(fields) if f}
        raw_nip = record.get("nip", "").lstrip("'").replace(" ", "")
        if "e+" in raw_nip.lower() or "," in raw_nip or "." in raw_nip:
            problem(number, "nip", f"{raw_nip!r} looks like a number Excel shortened; format "
                    "the NIP column as text and export again", raw_nip)
        elif not (raw_nip.isdigit() and len(raw_nip) == 18):
            problem(number, "nip", f"NIP must be 18 digits, not {raw_nip!r}", raw_nip)
        elif raw_nip in seen:
            problem(number, "nip", f"NIP {raw_nip} is also on row {seen[raw_nip]}; a person "
                    "appears once", raw_nip)
        else:
            seen[raw_nip] = number
        if not record.get("name"):
            problem(number, "name", "the name is empty", raw_nip)
        group = record.get("job_group", "").lower()
        if group not in groups:
            problem(number, "job_group", f"{group!r} is not one of {', '.join(sorted(groups))}",
                    raw_nip)
        elif group == "fungsional" and not record.get("grade"):
            problem(number, "grade", "a functional position needs its grade (e.g. Ahli Muda)",
                    raw_nip)
        rows.append(RosterRow(raw_nip, record.get("name", ""), group, record.get("grade", ""),
                              record.get("position", ""), record.get("unit", "")))
    if not rows and not problems:
        problem(2, "", "the roster has no participants")
    if problems:
        raise ImportFailed(problems)
    return rows


def import_roster(db: Session, *, session: TestSession, rows: list[RosterRow], secret: str,
                  actor: str, now: datetime) -> tuple[int, int]:
    """Add the people to the session (updating their details by NIP). Someone already on the
    roster keeps their token, so printed cards stay valid. Returns (added, updated)."""
    added = updated = 0
    for row in rows:
        person = db.scalar(select(Participant).where(Participant.nip == row.nip))
        if person is None:
            person = Participant(nip=row.nip, name=row.name, job_group=JobGroup(row.job_group),
                                 grade=row.grade, position=row.position, unit=row.unit)
            db.add(person)
            db.flush()
        else:
            person.name, person.job_group = row.name, JobGroup(row.job_group)
            person.grade, person.position, person.unit = row.grade, row.position, row.unit
        entry = db.scalar(select(RosterEntry).where(RosterEntry.session_id == session.id,
                                                    RosterEntry.participant_id == person.id))
        if entry is None:
            token = new_participant_token()
            db.add(RosterEntry(session_id=session.id, participant_id=person.id,
                               token_hmac=keyed_digest(secret, TOKEN_PURPOSE, token),
                               token_encrypted=encrypt_token(secret, token)))
            added += 1
        else:
            updated += 1
    db.flush()
    audit.record(db, actor=actor, action="roster.import", target=f"session:{session.code}",
                 now=now, data={"added": added, "updated": updated})
    return added, updated


def tokens_csv(db: Session, *, session: TestSession, secret: str) -> str:
    """nip,name,token for printing cards (decrypted; the caller audits the export)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["nip", "name", "token"])
    for entry, person in db.execute(
            select(RosterEntry, Participant)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .where(RosterEntry.session_id == session.id).order_by(Participant.name)):
        writer.writerow([person.nip, person.name, decrypt_token(secret,
                                                                entry.token_encrypted)])
    return out.getvalue()
