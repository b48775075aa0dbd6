"""A session's scoring settings that an admin sets (``cact session settings`` and the session
page): the purpose of the assessment, which decides the category table, and whether the JPM
is capped at 100. They live in the session's ``settings["scoring"]``, read by
``app.scoring.outcomes.ScoringConfig`` (docs/psychometrics.md).

Results already stored are not rescored here: a rescore is its own audited action (``cact
results rescore`` or the results page's button), as after a change of the job standards.
The change says how many stored results were scored with other settings, so the admin
knows to run it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.models import Attempt
from app.scoring.models import Result
from app.scoring.outcomes import ScoringConfig
from app.sessions.models import TestSession
from app.sessions.service import SessionError

# What an admin may write -> the purpose ScoringConfig knows. "position" is the word of the
# domain (filling a position); "placement" is the stored value.
PURPOSES = {"mapping": "mapping", "position": "placement", "placement": "placement"}
CAP_WORDS = {"on": True, "off": False}
MAX_SHOWN = 40  # characters of a refused value repeated in the message


@dataclass(frozen=True)
class ScoringSettings:
    purpose: str  # "mapping" or "placement"
    jpm_cap: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SettingsChange:
    old: ScoringSettings
    new: ScoringSettings
    stale_results: int  # stored results scored with settings other than ``new``

    @property
    def changed(self) -> bool:
        return self.old != self.new


def current(session: TestSession) -> ScoringSettings:
    """The session's purpose and JPM cap as scoring reads them (the defaults when unset)."""
    raw = dict((session.settings or {}).get("scoring") or {})
    defaults = ScoringConfig()
    return ScoringSettings(str(raw.get("purpose", defaults.purpose)),
                           bool(raw.get("jpm_cap", defaults.jpm_cap)))


def stale_results(db: Session, session: TestSession,
                  settings: ScoringSettings | None = None) -> int:
    """How many of the session's stored results were scored with another purpose or JPM cap
    than ``settings`` (the session's own by default): a rescore would change their reading."""
    wanted = settings or current(session)
    count = 0
    for detail in db.scalars(select(Result.detail).join(Attempt, Attempt.id == Result.attempt_id)
                             .where(Attempt.session_id == session.id)):
        config = (detail or {}).get("config") or {}
        if (config.get("purpose"), config.get("jpm_cap")) != (wanted.purpose, wanted.jpm_cap):
            count += 1
    return count


def _purpose(value: str) -> str:
    purpose = PURPOSES.get(value.strip().lower())
    if purpose is None:
        raise SessionError("scoring_purpose", value=value.strip()[:MAX_SHOWN])
    return purpose


def _cap(value: str) -> bool:
    cap = CAP_WORDS.get(value.strip().lower())
    if cap is None:
        raise SessionError("scoring_jpm_cap", value=value.strip()[:MAX_SHOWN])
    return cap


def set_scoring_settings(db: Session, *, session: TestSession, purpose: str | None,
                         jpm_cap: str | None, actor: str, now: datetime) -> SettingsChange:
    """Set the purpose (``mapping``, or ``position`` / ``placement``) and the JPM cap (``on`` /
    ``off``) of a session; None or an empty value keeps that setting. Audited with the old and
    the new values when something changed; nothing is written otherwise. Stored results are
    not rescored (see the module's docstring). Raises SessionError for a value outside these,
    or when the session's other scoring settings are invalid."""
    old = current(session)
    new = ScoringSettings(_purpose(purpose) if purpose and purpose.strip() else old.purpose,
                          _cap(jpm_cap) if jpm_cap and jpm_cap.strip() else old.jpm_cap)
    if new == old:
        return SettingsChange(old, new, stale_results(db, session, new))
    settings = dict(session.settings or {})
    scoring = dict(settings.get("scoring") or {})
    scoring.update(purpose=new.purpose, jpm_cap=new.jpm_cap)
    settings["scoring"] = scoring
    try:
        ScoringConfig.from_settings(settings)
    except (ValueError, TypeError) as exc:  # another scoring setting of the session is wrong
        raise SessionError("scoring_settings", detail=str(exc)[:200]) from None
    session.settings = settings
    db.flush()
    stale = stale_results(db, session, new)
    audit.record(db, actor=actor, action="session.scoring_settings",
                 target=f"session:{session.code}", now=now,
                 data={"old": old.as_json(), "new": new.as_json(), "stale_results": stale})
    return SettingsChange(old, new, stale)
