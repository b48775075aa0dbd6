"""Every audit action the code records has a sentence in Indonesian and in English, and each
sentence names only values its events carry. The actions are read from the source of app/
(every ``audit.record(...)`` call, and the action names handed to the login tally that records
them later), so a new action without a sentence fails here."""

from __future__ import annotations

import ast
import re
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import audit_text, i18n
from app.audit import AuditEvent
from app.sessions.service import TRANSITIONS

APP = Path(__file__).resolve().parents[2] / "app"
DOTTED = re.compile(r"^[a-z_]+\.[a-z_]+$")
# Placeholders every sentence may use, and those derived from a data key (app/audit_text.py).
BASE = {"actor", "target", "action"}
DERIVED = {"nip": {"person"}, "seconds": {"seconds_min"}, "paused_s": {"paused_min"},
           "bytes": {"mb"}}


def _is_record(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "record" and \
        ast.unparse(call.func.value) == "audit"


def _names_of(expr: ast.expr, where: str) -> list[str]:
    """The action names an ``action=`` expression can take."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.IfExp):
        return _names_of(expr.body, where) + _names_of(expr.orelse, where)
    if isinstance(expr, ast.JoinedStr) and ast.unparse(expr) == "f'session.{action}'":
        return [f"session.{name}" for name in TRANSITIONS]  # the session state changes
    if isinstance(expr, ast.Name) and where.endswith("auth/throttle.py"):
        return []  # the tally's own names: collected from its callers' action="..." below
    raise AssertionError(f"{where}: cannot tell which actions {ast.unparse(expr)} records")


def recorded_actions() -> dict[str, list[set[str] | None]]:
    """action -> the data keys of each call that records it (None: not a literal dict)."""
    found: dict[str, list[set[str] | None]] = {}
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(APP.parent))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if _is_record(node):
                assert "action" in keywords, f"{where}:{node.lineno}: audit.record without action"
                data = keywords.get("data")
                keys: set[str] | None = set()
                if isinstance(data, ast.Dict):
                    if any(k is None for k in data.keys):  # **spread
                        keys = None
                    else:
                        keys = {k.value for k in data.keys if isinstance(k, ast.Constant)}
                elif data is not None:
                    keys = None
                for name in _names_of(keywords["action"], where):
                    found.setdefault(name, []).append(keys)
            elif isinstance(keywords.get("action"), ast.Constant):
                # a name handed on to be recorded later (the login refusal tally)
                value = keywords["action"].value
                if isinstance(value, str) and DOTTED.match(value) and value.endswith(
                        "_throttled"):
                    found.setdefault(value, []).append({"count", "first", "last", "addresses",
                                                        "longest_wait_s"})
    return found


ACTIONS = recorded_actions()


def test_the_source_scan_finds_the_actions_it_should():
    # A scan that found nothing would pass everything below: known actions of each kind.
    for name in ("auth.login", "attempt.extra_time", "user.enable", "user.disable",
                 "session.close", "blueprint.replace", "auth.login_throttled",
                 "taker.login_throttled", "taker.login_refused_seat"):
        assert name in ACTIONS, name
    assert len(ACTIONS) >= 70


@pytest.mark.parametrize("lang", ["id", "en"])
def test_every_recorded_action_has_a_sentence(lang):
    messages = i18n.messages(lang)
    missing = sorted(a for a in ACTIONS if f"auditlog.{a}" not in messages)
    assert missing == [], f"no {lang} sentence for {missing}"


@pytest.mark.parametrize("lang", ["id", "en"])
def test_sentences_use_only_values_the_events_carry(lang):
    messages = i18n.messages(lang)
    for action, calls in ACTIONS.items():
        for key in [k for k in messages if k == f"auditlog.{action}"
                    or k.startswith(f"auditlog.{action}.")]:
            used = {f for _, f, _, _ in string.Formatter().parse(messages[key]) if f}
            for data in calls:
                if data is None:
                    continue
                allowed = BASE | data | {d for k in data for d in DERIVED.get(k, ())}
                assert used <= allowed, f"{key} uses {used - allowed}, not in {action}'s data"


@pytest.mark.parametrize("lang", ["id", "en"])
def test_an_event_reads_as_a_sentence_with_its_reason(lang):
    event = AuditEvent(id=1, at=datetime(2026, 12, 5, tzinfo=UTC), actor="user:admin",
                       action="attempt.extra_time", target="attempt:4", reason="listrik padam",
                       data={"minutes": 5, "total_extra_s": 300})
    names = audit_text.Names(users={"admin": "Admin Demo"}, attempts={4: "Rina Saputra"})
    text = audit_text.sentence(lang, event, names)
    expected = {"id": "Admin Demo menambah waktu 5 menit untuk Rina Saputra: listrik padam",
                "en": "Admin Demo gave Rina Saputra 5 minutes extra time: listrik padam"}
    assert text == expected[lang]


@pytest.mark.parametrize("lang", ["id", "en"])
def test_an_unknown_action_still_reads_sensibly(lang):
    event = AuditEvent(id=1, at=datetime(2026, 12, 5, tzinfo=UTC), actor="cli",
                       action="something.new", target="session:DEMO", data={"x": 1})
    text = audit_text.sentence(lang, event, audit_text.Names(sessions={"DEMO": "Demo CACT"}))
    assert "something.new" in text and "Demo CACT (DEMO)" in text
    assert "{" not in text and "—" not in text
