"""The alert lines staff see at the top of the proctor console and the admin dashboard: the
failing health checks, then the outage and backup alerts of their own modules."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from app.i18n import translate
from app.ops import health
from app.ops.state import Alert
from app.settings import Settings

logger = logging.getLogger("cact.ops")

LEVEL_ORDER = {"error": 0, "warning": 1, "info": 2}


def health_alert(check: health.Check) -> Alert:
    """A failing check as an "error" line, Indonesian and English."""
    title_id = translate("id", f"health.check_{check.name}")
    title_en = translate("en", f"health.check_{check.name}")
    return Alert("error", f"health_{check.name}", f"{title_id}: {check.message('id')}",
                 f"{title_en}: {check.message('en')}")


def system_alerts(db: Session, *, settings: Settings, now: datetime,
                  session_id: int | None = None, secret: str | None = None) -> list[Alert]:
    """Everything staff should see now, errors first. ``db`` is the page's own (read-only)
    session: the write probe of the database is /healthz's, whose last failure in this process
    is shown here for a minute. The key check runs only when ``secret`` is given."""
    checks: list[health.Check] = []
    probe = health.recent_probe_failure(db)
    if probe is not None:
        checks.append(probe)
    checks += [health.check_schema(db), health.check_disk(settings)]
    if secret is not None:
        checks.append(health.check_key(db, secret=secret))
    checks.append(health.check_clock(db, now=now))
    alerts = [health_alert(c) for c in checks if c.ok is False]
    for source, collect in (
        ("outage", lambda: _outage(db, now=now, session_id=session_id)),
        ("backup", lambda: _backup(db, settings=settings, now=now)),
    ):
        try:
            alerts += collect()
        except Exception:  # one broken source must not hide the others
            logger.exception("%s alerts failed", source)
            alerts.append(Alert("warning", f"{source}_unknown",
                                translate("id", "health.source_failed", source=source),
                                translate("en", "health.source_failed", source=source)))
    if any(a.code == "clock_jump" for a in alerts):
        # The outage module's own line says the same in both languages: show it once.
        alerts = [a for a in alerts if a.code != "health_clock"]
    return sorted(alerts, key=lambda a: LEVEL_ORDER.get(a.level, 3))


def _outage(db: Session, *, now: datetime, session_id: int | None) -> list[Alert]:
    from app.ops import outage

    return list(outage.alerts(db, now=now, session_id=session_id))


def _backup(db: Session, *, settings: Settings, now: datetime) -> list[Alert]:
    from app.ops import backup

    return list(backup.alerts(db, settings=settings, now=now))
