"""A session's Safe Exam Browser requirement, set by an admin (the checks of every taker
request are ``app.delivery.seb``)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from app import audit
from app.sessions.models import TestSession
from app.sessions.service import SessionError

KEY_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_BROWSER_EXAM_KEYS = 20


def _keys(raw: str) -> list[str]:
    return [k.lower() for k in re.split(r"[\s,;]+", raw.strip()) if k]


def set_config(db: Session, *, session: TestSession, config_key: str, browser_exam_keys: str,
               actor: str, now: datetime) -> None:
    """Set (or, with an empty config key, clear) the session's SEB requirement; audited.
    Raises SessionError (``seb_key``) for a value that is not 64 hexadecimal digits."""
    key = config_key.strip().lower()
    exam_keys = _keys(browser_exam_keys)
    settings = dict(session.settings or {})
    if not key:
        if exam_keys:
            raise SessionError("seb_needs_config_key")
        had = "seb_config_key" in settings
        settings.pop("seb_config_key", None)
        settings.pop("seb_browser_exam_keys", None)
        session.settings = settings
        if had:
            audit.record(db, actor=actor, action="session.seb_clear",
                         target=f"session:{session.code}", now=now)
        return
    for value in [key, *exam_keys]:
        if not KEY_RE.match(value):
            raise SessionError("seb_key", value=value[:80])
    if len(exam_keys) > MAX_BROWSER_EXAM_KEYS:
        raise SessionError("seb_too_many_keys", limit=MAX_BROWSER_EXAM_KEYS)
    settings["seb_config_key"] = key
    if exam_keys:
        settings["seb_browser_exam_keys"] = exam_keys
    else:
        settings.pop("seb_browser_exam_keys", None)
    session.settings = settings
    # The keys are in the SEB configuration file on every lab PC, so they are not secret;
    # the log still keeps only a fingerprint, enough to tell which configuration was set.
    audit.record(db, actor=actor, action="session.seb_set", target=f"session:{session.code}",
                 now=now, data={"config_key_prefix": key[:8],
                                "browser_exam_keys": len(exam_keys)})
