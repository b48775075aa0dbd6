"""A session's roster: import from a spreadsheet's CSV, and each participant's login token.

The CSV comes from Excel or LibreOffice, written by people who do not read CSV specs, so the
reader forgives what is harmless (semicolons, a byte-order mark, English or Indonesian headers
in any case and order, spaces or a leading apostrophe in a NIP) and refuses what would be
wrong later, naming the row and column and how to fix it, all problems at once. Nothing is
imported while any problem remains.

A login token is shown to a person exactly once per printing and is kept only as an HMAC (to
check a login) and encrypted with the server secret (to print the card again). Tokens never go
to the audit log or to logs: the log says who exported or reissued them, not what they were.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import audit
from app.auth.security import decrypt_token, encrypt_token, keyed_digest, new_participant_token
from app.bank.parsed import ImportFailed, Problem, problem
from app.delivery.models import Answer, AnswerEvent, Attempt, AttemptState
from app.exports import csv_text
from app.sessions.models import (
    GRADES,
    JobGroup,
    Participant,
    RosterEntry,
    SessionState,
    TestSession,
    clean_nip,
)
from app.sessions.service import SessionError
from app.spreadsheets import TableError, read_rows

TOKEN_PURPOSE = "participant-token"  # noqa: S105 - the HMAC purpose the taker login checks
MAX_ROWS = 5000

# accepted header (lower case) -> field; English and Indonesian, mixed at will
HEADERS = {
    "nip": "nip",
    "name": "name", "nama": "name",
    "job_group": "job_group", "kelompok_jabatan": "job_group",
    "grade": "grade", "jenjang": "grade",
    "position": "position", "jabatan": "position",
    "unit": "unit", "unit_kerja": "unit",
    "seat": "seat", "kursi": "seat",
}
REQUIRED = ("nip", "name", "job_group")
LIMITS = {"name": 200, "grade": 64, "position": 200, "unit": 200, "seat": 32}
_SCIENTIFIC = re.compile(r"^\d+([.,]\d+)?[eE][+-]?\d+$")


@dataclass
class RosterRow:
    nip: str
    name: str
    job_group: str
    grade: str = ""
    position: str = ""
    unit: str = ""
    seat: str = ""


class RosterImport(NamedTuple):
    added: int  # new on this session's roster, with a new token
    kept: int  # already on it: details updated, token unchanged


class TokenRow(NamedTuple):
    nip: str
    name: str
    token: str
    seat: str


def _column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names the column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = string.ascii_uppercase[rest] + letters
    return letters


def parse_roster(data: bytes, *, source: str) -> list[RosterRow]:
    """Read a roster CSV or .xlsx (app/spreadsheets.py). Raises ImportFailed with every
    problem (row, column, fix) found."""
    problems: list[Problem] = []
    try:
        table = read_rows(data)
    except TableError as failed:
        raise ImportFailed([problem(source, failed.location, "", key=failed.key,
                                    **failed.params)]) from None
    reader = iter(table.rows)
    header_cells = next(reader, [])
    header = [h.strip() for h in header_cells]
    fields: list[str | None] = []
    columns: dict[str, str] = {}  # field -> "name (letter)" for locations
    for index, cell in enumerate(header):
        field = HEADERS.get(cell.lower())
        where = f"row 1, column {_column_letter(index)}"
        if field is None and cell:
            problems.append(problem(source, where, "", key="roster_unknown_column",
                                    column=cell))
        elif field in columns:
            problems.append(problem(source, where, "", key="roster_duplicate_column",
                                    column=cell))
            field = None
        if field:
            columns[field] = f"{cell} ({_column_letter(index)})"
        fields.append(field)
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        problems.append(problem(source, "row 1", "", key="roster_missing_columns",
                                columns=", ".join(missing)))
        raise ImportFailed(problems)

    def located(row: int, field: str, who: str, key: str, **params) -> None:
        problems.append(problem(source, f"row {row}, column {columns[field]}", who, key=key,
                                **params))

    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    groups = {g.value for g in JobGroup}
    grades = {g.lower(): g for g in GRADES}
    for number, values in enumerate(reader, 2):
        if not any(v.strip() for v in values):
            continue
        if len(rows) >= MAX_ROWS:
            problems.append(problem(source, f"row {number}", "", key="roster_too_many",
                                    limit=MAX_ROWS))
            break
        if len(values) > len(fields) and any(v.strip() for v in values[len(fields):]):
            problems.append(problem(source, f"row {number}", "", key="roster_extra_values",
                                    found=len(values), expected=len(fields)))
        record = {f: values[i].strip() if i < len(values) else ""
                  for i, f in enumerate(fields) if f}
        nip = clean_nip(record["nip"])
        if _SCIENTIFIC.match(nip):
            located(number, "nip", nip, "roster_nip_scientific", value=nip)
        elif not nip:
            located(number, "nip", "", "roster_nip_empty")
        elif not (nip.isascii() and nip.isdigit()) or len(nip) != 18:
            located(number, "nip", nip, "roster_nip_digits", value=nip, length=len(nip))
        elif nip in seen:
            located(number, "nip", nip, "roster_nip_duplicate", nip=nip, other=seen[nip])
        else:
            seen[nip] = number
        if not record["name"]:
            located(number, "name", nip, "roster_name_empty")
        group = record["job_group"].lower()
        grade = record.get("grade", "")
        if group not in groups:
            located(number, "job_group", nip, "roster_job_group", value=record["job_group"],
                    allowed=", ".join(g.value for g in JobGroup))
        elif group == JobGroup.fungsional:
            if not grade:
                located(number, "grade" if "grade" in columns else "job_group", nip,
                        "roster_grade_required", allowed=", ".join(GRADES))
            elif grade.lower() not in grades:
                located(number, "grade", nip, "roster_grade_unknown", value=grade,
                        allowed=", ".join(GRADES))
            else:
                grade = grades[grade.lower()]
        for field, limit in LIMITS.items():
            if len(record.get(field, "")) > limit:
                located(number, field, nip, "roster_too_long", limit=limit)
        rows.append(RosterRow(nip=nip, name=record["name"], job_group=group, grade=grade,
                              position=record.get("position", ""), unit=record.get("unit", ""),
                              seat=record.get("seat", "")))
    if not rows and not problems:
        problems.append(problem(source, "row 2", "", key="roster_empty"))
    if problems:
        raise ImportFailed(problems)
    return rows


def _new_entry_token(secret: str) -> tuple[str, str, bytes]:
    token = new_participant_token()
    return token, keyed_digest(secret, TOKEN_PURPOSE, token), encrypt_token(secret, token)


def import_roster(db: Session, *, session: TestSession, rows: list[RosterRow], secret: str,
                  actor: str, now: datetime) -> RosterImport:
    """Put the people on the session's roster. A participant is one person across events
    (by NIP), so name, job group, grade, position and unit follow the newest roster. Someone
    already on this roster keeps their token, so cards already printed stay valid."""
    if session.state == SessionState.closed:
        raise SessionError("roster_closed", code=session.code)
    nips = [row.nip for row in rows]
    known = set(db.scalars(select(Participant.nip).where(Participant.nip.in_(nips))))
    # INSERT .. ON CONFLICT DO NOTHING, not a plain add: two admins importing lists that share
    # a new NIP at the same moment must both succeed (PostgreSQL makes the second wait for the
    # first and then skip the row), not fail on the unique constraint.
    fresh = [row for row in rows if row.nip not in known]
    created = 0
    # Rows as executemany parameters, not one .values([...]): compiling a 5,000-row VALUES
    # clause took seconds, all of them inside the write transaction (#13, finding 6).
    if fresh:
        created = len(db.execute(
            _insert(db, Participant).on_conflict_do_nothing(index_elements=["nip"])
            .returning(Participant.id),
            [{"nip": r.nip, "name": r.name, "job_group": JobGroup(r.job_group),
              "grade": r.grade, "position": r.position, "unit": r.unit} for r in fresh]).all())
    people = {p.nip: p for p in db.scalars(select(Participant).where(Participant.nip.in_(nips)))}
    for row in rows:
        person = people[row.nip]
        person.name, person.job_group, person.grade = row.name, JobGroup(row.job_group), row.grade
        person.position, person.unit = row.position, row.unit
    on_roster = {e.participant_id: e for e in db.scalars(
        select(RosterEntry).where(RosterEntry.session_id == session.id))}
    new_entries = []
    for row in rows:
        entry = on_roster.get(people[row.nip].id)
        # The job at the time of this test, kept on the seat: the participant row follows
        # the newest roster of any session (history, app/programmes/people.py).
        job = {"job_group": JobGroup(row.job_group), "grade": row.grade,
               "position": row.position, "unit": row.unit}
        if entry is None:
            _, digest, blob = _new_entry_token(secret)
            new_entries.append({"session_id": session.id, "participant_id": people[row.nip].id,
                                "token_hmac": digest, "token_encrypted": blob,
                                "seat": row.seat, **job})
        else:
            for name, value in job.items():
                setattr(entry, name, value)
            if row.seat:
                entry.seat = row.seat
    added_ids: list[int] = []
    if new_entries:
        added_ids = list(db.scalars(_insert(db, RosterEntry)
                                    .on_conflict_do_nothing(
                                        index_elements=["session_id", "participant_id"])
                                    .returning(RosterEntry.id), new_entries))
    added = len(added_ids)
    if session.prepared_at is not None and added_ids:
        # A prepared session stays prepared: the people added get their forms now.
        from app.sessions.prepare import draw_forms

        draw_forms(db, session=session, entry_ids=sorted(added_ids))
    kept = len(rows) - added
    db.flush()
    audit.record(db, actor=actor, action="roster.import", target=f"session:{session.code}",
                 now=now, data={"rows": len(rows), "added": added, "kept": kept,
                                "new_participants": created})
    return RosterImport(added, kept)


def _insert(db: Session, model: type) -> Any:
    dialect = db.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(model)


def _entry_for(db: Session, session: TestSession, nip: str) -> tuple[RosterEntry, Participant]:
    found = db.execute(
        select(RosterEntry, Participant)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(RosterEntry.session_id == session.id, Participant.nip == clean_nip(nip))).first()
    if found is None:
        raise SessionError("not_on_roster", nip=clean_nip(nip), code=session.code)
    return found[0], found[1]


def reissue_token(db: Session, *, session: TestSession, nip: str, reason: str, secret: str,
                  actor: str, now: datetime) -> str:
    """Give one participant a new token (a lost or seen card); the old one stops working at
    once. Returns the new token for printing; the audit row holds the NIP and reason only."""
    if not reason.strip():
        raise SessionError("reason_required")
    if session.state == SessionState.closed:
        raise SessionError("roster_closed", code=session.code)
    entry, person = _entry_for(db, session, nip)
    while True:
        token, digest, blob = _new_entry_token(secret)
        if digest != entry.token_hmac:
            break
    entry.token_hmac, entry.token_encrypted = digest, blob
    # Whoever is logged in with the old card (perhaps the person who saw it) is logged out and
    # the seat is freed, so the owner can log in with the new card on any computer. The
    # answers and the deadlines stay with the attempt.
    attempt = db.scalar(select(Attempt).where(Attempt.roster_entry_id == entry.id))
    logged_out = attempt is not None and attempt.access_token_hmac is not None
    if attempt is not None:
        attempt.access_token_hmac = None
        attempt.workstation_id = None
    db.flush()
    audit.record(db, actor=actor, action="roster.reissue_token",
                 target=f"session:{session.code}", reason=reason.strip(), now=now,
                 data={"nip": person.nip, "logged_out": logged_out})
    return token


def remove_from_roster(db: Session, *, session: TestSession, nip: str, reason: str, actor: str,
                       now: datetime) -> None:
    """Take someone off the roster (wrong list, moved to another day). Refused once they have
    started or answered anything: their work is evidence and must stay; hand it in instead.
    Someone who only logged in loses that empty attempt with the roster entry. The person
    (NIP, name) stays, since other sessions may know them."""
    if not reason.strip():
        raise SessionError("reason_required")
    if session.state == SessionState.closed:
        raise SessionError("roster_closed", code=session.code)
    entry, person = _entry_for(db, session, nip)
    attempt = db.scalar(select(Attempt).where(Attempt.roster_entry_id == entry.id))
    if attempt is not None:
        answered = db.scalar(select(exists().where(AnswerEvent.attempt_id == attempt.id)))
        if attempt.state not in (AttemptState.prepared, AttemptState.not_started) or answered:
            raise SessionError("roster_remove_started", nip=person.nip, code=session.code)
        db.execute(delete(Answer).where(Answer.attempt_id == attempt.id))
        db.delete(attempt)
    db.delete(entry)
    db.flush()
    audit.record(db, actor=actor, action="roster.remove", target=f"session:{session.code}",
                 reason=reason.strip(), now=now,
                 data={"nip": person.nip, "had_attempt": attempt is not None})


def roster_rows(db: Session, session: TestSession) -> list[tuple[RosterEntry, Participant]]:
    """The roster by name, sorted here rather than by the database so that cards come out in
    the same order whatever the database's collation."""
    rows = db.execute(
        select(RosterEntry, Participant)
        .join(Participant, Participant.id == RosterEntry.participant_id)
        .where(RosterEntry.session_id == session.id)).all()
    return sorted(rows, key=lambda row: (row[1].name.casefold(), row[1].nip))


def tokens_for_session(db: Session, *, session: TestSession, secret: str,
                       nip: str = "") -> list[TokenRow]:
    """Decrypted tokens for printing cards, by name (one participant's when ``nip`` is given).
    Callers that show or write them must audit the export (:func:`export_tokens`)."""
    rows = roster_rows(db, session)
    if nip:
        rows = [(e, p) for e, p in rows if p.nip == clean_nip(nip)]
    return [TokenRow(p.nip, p.name, decrypt_token(secret, e.token_encrypted), e.seat)
            for e, p in rows]


def export_tokens(db: Session, *, session: TestSession, secret: str, fmt: str, actor: str,
                  now: datetime, nip: str = "") -> list[TokenRow]:
    """Tokens for a CSV, PDF or printed page, with the audit row every such export needs
    (whoever holds the output can log in as these people)."""
    rows = tokens_for_session(db, session=session, secret=secret, nip=nip)
    data: dict[str, object] = {"format": fmt, "count": len(rows)}
    if nip:
        data["nip"] = clean_nip(nip)
    audit.record(db, actor=actor, action="session.tokens_export",
                 target=f"session:{session.code}", now=now, data=data)
    return rows


def tokens_to_csv(rows: list[TokenRow]) -> str:
    """nip,name,token; a spreadsheet never runs a name as a formula (app/exports.py)."""
    return csv_text(["nip", "name", "token"], ([row.nip, row.name, row.token] for row in rows),
                    lineterminator="\n")


def tokens_csv(db: Session, *, session: TestSession, secret: str) -> str:
    """nip,name,token (decrypted; the caller audits the export)."""
    return tokens_to_csv(tokens_for_session(db, session=session, secret=secret))
