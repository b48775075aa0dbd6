"""Audit events as sentences for people ("Admin Demo masuk", "Admin Demo menambah waktu 5
menit untuk Rina Saputra: listrik padam"), for the audit log page and the admin dashboard.

Display only: the stored rows, their hash chain and ``cact audit verify`` are untouched, and
the pages keep the raw codes beside each sentence for auditors. Every action the code records
has a sentence template in the locale files (``auditlog.<action>``, in both languages; a test
reads the source for the actions), an action without one still reads as a sentence
(``auditlog.unknown``). The people and things an event names (``user:admin``, ``attempt:4``,
``session:DEMO``, ``bank:CODE/v2``) are looked up for a whole page at once: one query per
kind of name on the page, never one per row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import i18n
from app.assembly.models import Blueprint
from app.audit import AuditEvent
from app.auth.models import User
from app.bank.models import ItemBank
from app.delivery.models import Attempt
from app.programmes.models import KeyPosition, Programme
from app.sessions.models import Participant, RosterEntry, TestSession

PREFIX = "auditlog."
UNKNOWN = PREFIX + "unknown"

# Actors that are no person: the command line, the demo loader, the server's own jobs.
_MACHINE_ACTORS = {"cli": "actor_cli", "demo": "actor_demo", "server": "actor_server",
                   "system": "actor_system"}


@dataclass
class AuditLine:
    """One row of the log as shown: the sentence, and the event with its raw codes."""

    event: AuditEvent
    text: str

    @property
    def code(self) -> str:
        """The raw record, for auditors (title attribute and detail column)."""
        e = self.event
        return " · ".join(part for part in (e.action, e.actor, e.target) if part)


@dataclass
class Names:
    """The names of everything a page of events refers to, by reference kind."""

    users: dict[str, str] = field(default_factory=dict)  # username -> full name
    people: dict[str, str] = field(default_factory=dict)  # NIP -> name
    attempts: dict[int, str] = field(default_factory=dict)  # attempt id -> person's name
    sessions: dict[str, str] = field(default_factory=dict)  # code -> name
    banks: dict[str, str] = field(default_factory=dict)  # code -> title
    blueprints: dict[str, str] = field(default_factory=dict)
    programmes: dict[str, str] = field(default_factory=dict)
    positions: dict[str, str] = field(default_factory=dict)


def _split(ref: str) -> tuple[str, str]:
    kind, _, rest = (ref or "").partition(":")
    return (kind, rest) if rest else ("", ref or "")


def _wanted(events: Sequence[AuditEvent]) -> dict[str, set[str]]:
    """Every reference on the page, grouped by kind (actors, targets and the names in data)."""
    want: dict[str, set[str]] = {}
    for e in events:
        for ref in (e.actor, e.target):
            kind, rest = _split(ref)
            if kind == "bank" or kind == "item":
                rest = rest.split("/")[0]
            if kind:
                want.setdefault(kind, set()).add(rest)
        data = e.data if isinstance(e.data, dict) else {}
        for key, kind in (("nip", "nip"), ("user", "user"), ("session", "session"),
                          ("to", "session")):
            if isinstance(data.get(key), str):
                want.setdefault(kind, set()).add(data[key])
    return want


def resolve(db: Session, events: Sequence[AuditEvent]) -> Names:
    """The names behind the references of these events: one query per kind present."""
    want = _wanted(events)
    names = Names()

    def lookup(kind: str, query) -> dict:
        keys = want.get(kind)
        return dict(db.execute(query(keys)).all()) if keys else {}

    names.users = {k: v for k, v in lookup("user", lambda keys: select(
        User.username, User.full_name).where(User.username.in_(keys))).items() if v}
    nips = want.get("taker", set()) | want.get("participant", set()) | want.get("nip", set())
    if nips:
        names.people = dict(db.execute(select(Participant.nip, Participant.name)
                                       .where(Participant.nip.in_(nips))).all())
    ids = {int(x) for x in want.get("attempt", set()) if x.isdigit() and len(x) < 19}
    if ids:
        names.attempts = dict(db.execute(
            select(Attempt.id, Participant.name)
            .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .where(Attempt.id.in_(ids))).all())
    names.sessions = lookup("session", lambda keys: select(
        TestSession.code, TestSession.name).where(TestSession.code.in_(keys)))
    banks = want.get("bank", set()) | want.get("item", set())
    if banks:
        names.banks = dict(db.execute(select(ItemBank.code, ItemBank.title)
                                      .where(ItemBank.code.in_(banks))).all())
    names.blueprints = lookup("blueprint", lambda keys: select(
        Blueprint.code, Blueprint.name).where(Blueprint.code.in_(keys)))
    names.programmes = lookup("programme", lambda keys: select(
        Programme.code, Programme.name).where(Programme.code.in_(keys)))
    names.positions = lookup("position", lambda keys: select(
        KeyPosition.key, KeyPosition.name).where(KeyPosition.key.in_(keys)))
    return names


def _t(lang: str, key: str, **params: Any) -> str:
    return i18n.translate(lang, PREFIX + key, **params)


def name_of(lang: str, ref: str, names: Names) -> str:
    """``user:admin`` -> "Admin Demo", ``attempt:4`` -> "Rina Saputra", ``session:DEMO`` ->
    "Demo CACT (DEMO)"; what is not found (deleted, or not a name) as its code."""
    kind, rest = _split(ref)
    if not kind:
        if rest in _MACHINE_ACTORS:
            return _t(lang, _MACHINE_ACTORS[rest])
        return rest
    if kind == "user":
        return names.users.get(rest, rest)
    if kind in ("taker", "participant", "nip"):
        person = names.people.get(rest)
        return f"{person} ({rest})" if person else rest
    if kind == "attempt":
        person = names.attempts.get(int(rest)) if rest.isdigit() else None
        return person or _t(lang, "ref_attempt", id=rest)
    if kind == "session":
        return _named(names.sessions.get(rest), rest)
    if kind == "bank":
        code, _, version = rest.partition("/")
        text = _named(names.banks.get(code), code)
        return f"{text} {version}" if version else text
    if kind == "item":
        parts = rest.split("/")
        if len(parts) == 3:  # bank/version/item
            return _t(lang, "ref_item_in", item=parts[2], bank=parts[0], version=parts[1])
        return parts[-1]
    if kind == "blueprint":
        return _named(names.blueprints.get(rest), rest)
    if kind == "programme":
        return _named(names.programmes.get(rest), rest)
    if kind == "position":
        return _named(names.positions.get(rest), rest)
    if kind == "addr":
        return _t(lang, "ref_addr_several" if rest == "several" else "ref_addr", addr=rest)
    if kind == "system":
        return _t(lang, "actor_system")
    if kind == "job_standard":
        return rest.replace("/", " · ")
    return ref


def _named(name: str | None, code: str) -> str:
    return f"{name} ({code})" if name and name != code else code


def _value(lang: str, value: Any) -> str:
    if isinstance(value, bool):
        return _t(lang, "yes" if value else "no")
    if isinstance(value, list | tuple):
        return ", ".join(_value(lang, v) for v in value) or "—"
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(lang, v)}" for k, v in value.items()) or "—"
    return str(value)


class _Params(dict):
    """Template parameters; a placeholder without a value shows as a dash, never fails."""

    def __missing__(self, key: str) -> str:
        return "—"


def _params(lang: str, event: AuditEvent, names: Names) -> _Params:
    data = event.data if isinstance(event.data, dict) else {}
    params = _Params({key: _value(lang, value) for key, value in data.items()})
    params["actor"] = name_of(lang, event.actor, names)
    params["target"] = name_of(lang, event.target, names)
    params["action"] = event.action
    if isinstance(data.get("nip"), str):
        params["person"] = name_of(lang, f"nip:{data['nip']}", names)
    if isinstance(data.get("user"), str):
        params["user"] = name_of(lang, f"user:{data['user']}", names)
    for key in ("session", "to"):
        if isinstance(data.get(key), str):
            params[key] = name_of(lang, f"session:{data[key]}", names)
    for key, shown in (("seconds", "seconds_min"), ("paused_s", "paused_min")):
        if isinstance(data.get(key), int | float):  # durations also in whole minutes
            params[shown] = str(round(data[key] / 60))
    if isinstance(data.get("bytes"), int | float):
        params["mb"] = str(max(1, round(data["bytes"] / 1_000_000)))
    if isinstance(data.get("role"), str):
        params["role"] = i18n.translate(lang, "role." + data["role"])
    if isinstance(data.get("format"), str):
        params["format"] = data["format"].upper()
    return params


# Actions whose sentence depends on one value of its data: auditlog.<action>.<value> first.
_VARIANTS = {"attempt.submit": "reason", "session.public_display": "enabled",
             "backup.restore": "ok", "auth.login_failed": "known_user"}


def _template(lang: str, event: AuditEvent) -> str:
    """The first of: the action's variant for its data, the action's own sentence, the
    sentence for an action without one."""
    keys = []
    variant = _VARIANTS.get(event.action)
    data = event.data if isinstance(event.data, dict) else {}
    if variant and variant in data:
        keys.append(f"{PREFIX}{event.action}.{str(data[variant]).lower()}")
    keys += [PREFIX + event.action, UNKNOWN if event.target else UNKNOWN + "_no_target"]
    for key in keys:
        text = i18n.messages(lang).get(key) or i18n.messages("id").get(key)
        if text:
            return text
    return "{actor}: {action}"


def sentence(lang: str, event: AuditEvent, names: Names) -> str:
    """The event as one sentence in ``lang``, with its reason after a colon."""
    params = _params(lang, event, names)
    text = _template(lang, event).format_map(params)
    data = event.data if isinstance(event.data, dict) else {}
    reason = (event.reason or "").strip()
    if not reason and event.action not in _VARIANTS and isinstance(data.get("reason"), str):
        reason = data["reason"].strip()  # a reason kept in the data (a calibration's)
    return f"{text}: {reason}" if reason else text


# What ``audit.verify`` says of a broken chain (in English, for the command line), read back
# as data so the audit page says it in the reader's language.
_PROBLEMS = (
    ("missing", re.compile(r"row (?P<first>\d+) to (?P<last>\d+) missing before row (?P<row>\d+)")),
    ("unlinked", re.compile(r"row (?P<row>\d+) does not link to row (?P<before>\d+) .*")),
    ("altered", re.compile(r"row (?P<row>\d+) was altered .*")),
)


def verify_problem(lang: str, problem: str) -> str:
    """A broken chain's problem in ``lang``; one not recognised as written."""
    for key, pattern in _PROBLEMS:
        match = pattern.fullmatch(problem)
        if match:
            return _t(lang, "problem_" + key, **match.groupdict())
    return problem


def audit_lines(db: Session, events: Iterable[AuditEvent], *, lang: str) -> list[AuditLine]:
    """A page of events as lines to show, names resolved for the whole page at once."""
    events = list(events)
    names = resolve(db, events)
    return [AuditLine(e, sentence(lang, e, names)) for e in events]
