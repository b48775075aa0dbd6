"""The health checks behind ``/healthz`` and the staff's alert lines.

Each check answers one question a lab technician can act on: can the server write to its
database, is the database's schema the one this code expects, is there disk space left for
answers and backups, is the secret key the one the database was used with, is the clock sane.
A check never raises: a check that crashes reports itself as failing, with the error's type.

``/healthz`` is unauthenticated, so nothing here may carry a secret, a key's fingerprint or a
file path: the messages name the problem and the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.i18n import translate
from app.settings import Settings

CHECK_NAMES = ("database", "schema", "disk", "key", "clock")
MiB = 1024 * 1024
# A database failure seen by /healthz stays on the staff's alert lines this long (they cannot
# probe a write from their read-only page requests).
PROBE_MEMORY_S = 60.0


@dataclass(frozen=True)
class Check:
    """The result of one named check. ``ok`` is None when it could not run because an
    earlier check failed (e.g. nothing else can be read when the database is unreachable)."""

    name: str
    ok: bool | None
    key: str = ""  # locale key of the message (health.*), empty when ok
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "en") -> str:
        """What is wrong, where, and how to fix it, in ``lang``; "ok" when nothing is."""
        if self.ok:
            return "ok"
        return translate(lang, self.key, **self.params)


def _error_text(exc: BaseException) -> str:
    """The driver's own one-line reason (e.g. "database disk image is malformed"), short."""
    reason = getattr(exc, "orig", None) or exc
    first = (str(reason).strip().splitlines() or [""])[0]
    return f"{type(reason).__name__}: {first}"[:200]


# -- the code's schema head, read once per process ---------------------------------------------


@lru_cache(maxsize=1)
def code_heads() -> frozenset[str]:
    """The Alembic head revision(s) this code expects (reading the scripts costs ~20 ms, so
    once per process)."""
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


# -- the single checks --------------------------------------------------------------------------


def check_database_write(database: Any, *, now: datetime) -> Check:
    """A query and a tiny write (the ServerState row "health_probe") in a short write
    transaction; on SQLite also ``PRAGMA quick_check`` now and then (:func:`sqlite_damage`).
    A restored copy left beside an old -wal file reads fine row by row while its pages no
    longer fit together ("database disk image is malformed" later): a bare ``SELECT 1``
    answered ok then."""
    from app.ops.state import set_value

    try:
        with database.transaction() as db:
            db.execute(text("SELECT count(*) FROM server_state")).scalar_one()
            set_value(db, "health_probe", {"pid": os.getpid()}, now=now)
        damage = sqlite_damage(database) if database.is_sqlite else None
    except Exception as exc:  # noqa: BLE001 - any failure is the answer, not a crash
        failed = Check("database", False, "health.database_unreachable" if _unreachable(exc)
                       else "health.database_failed", {"error": _error_text(exc)})
        _remember_probe_failure(database, failed)
        return failed
    if damage:
        failed = Check("database", False, "health.database_damaged", {"error": damage})
        _remember_probe_failure(database, failed)
        return failed
    _remember_probe_failure(database, None)
    return Check("database", True)


def _unreachable(exc: BaseException) -> bool:
    """No connection at all (server down, wrong address, file cannot be opened), as opposed
    to a database that answers but fails."""
    text_ = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in text_ for sign in ("connection failed", "could not connect",
                                          "connection refused", "unable to open"))


# quick_check reads every page (a few ms for a small file, ~0.15 s for 35 MB here): once per
# process at the first probe (a restore happens while the server is stopped) and then every
# few minutes; a damaged file is looked at again sooner, to see it repaired.
QUICK_CHECK_EVERY_S = 300.0
QUICK_CHECK_DAMAGED_AGAIN_S = 30.0
_quick_checks: dict[str, tuple[float, str | None]] = {}


def sqlite_damage(database: Any) -> str | None:
    """The first lines of ``PRAGMA quick_check`` when the SQLite file is damaged, else None
    (cached per database as described above)."""
    key = _url_key(database.engine)
    with _probe_lock:
        seen = _quick_checks.get(key)
    if seen is not None:
        age = time.monotonic() - seen[0]
        if age < (QUICK_CHECK_DAMAGED_AGAIN_S if seen[1] else QUICK_CHECK_EVERY_S):
            return seen[1]
    with database.engine.connect() as conn:
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check(5)")]
    lines = [line for row in rows for line in row.splitlines() if line.strip()]
    damage = None if lines == ["ok"] else "; ".join(lines[:4])[:300]
    with _probe_lock:
        _quick_checks[key] = (time.monotonic(), damage)
    return damage


def check_schema(db: Session) -> Check:
    """The database's Alembic revision against the code's head."""
    try:
        found = set(db.scalars(text("SELECT version_num FROM alembic_version")))
    except Exception as exc:  # noqa: BLE001
        return Check("schema", False, "health.schema_unreadable", {"error": _error_text(exc)})
    expected = code_heads()
    if found == expected:
        return Check("schema", True)
    return Check("schema", False, "health.schema_mismatch",
                 {"found": ", ".join(sorted(found)) or "-",
                  "expected": ", ".join(sorted(expected))})


def data_folder(settings: Settings) -> Path:
    """Where the answers are written: the SQLite file's folder, else the data directory."""
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            return Path(database).resolve().parent
    return Path(settings.data_dir)


def disk_free_bytes(settings: Settings) -> int | None:
    """Free bytes for an unprivileged writer on the data folder's disk (None: no such folder)."""
    folder = data_folder(settings)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # not created yet: the disk it will be on
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_disk(settings: Settings) -> Check:
    """Free space on the data folder's disk against ``disk_min_free_mb``."""
    free = disk_free_bytes(settings)
    if free is None:
        return Check("disk", False, "health.disk_unknown")
    if free < settings.disk_min_free_mb * MiB:
        return Check("disk", False, "health.disk_low",
                     {"free_mb": free // MiB, "min_mb": settings.disk_min_free_mb})
    return Check("disk", True)


def check_key(db: Session, *, secret: str) -> Check:
    """The secret key against the fingerprint the database recorded (app.ops.keycheck)."""
    from app.ops import keycheck

    try:
        problem = keycheck.problem(db, secret=secret)
    except Exception as exc:  # noqa: BLE001
        return Check("key", False, "health.check_crashed", {"error": _error_text(exc)})
    if problem is None:
        return Check("key", True)
    # keycheck's own text names both fingerprints; /healthz is public, so it says only what
    # is wrong and how to fix it (any `cact` command on the server prints the details).
    return Check("key", False, "health.key_mismatch")


def check_clock(db: Session, *, now: datetime) -> Check:
    """The server clock against what the database last saw (app.ops.outage)."""
    from app.ops import outage

    try:
        problem = outage.clock_problem(db, now=now)
    except Exception as exc:  # noqa: BLE001
        return Check("clock", False, "health.check_crashed", {"error": _error_text(exc)})
    if problem is None:
        return Check("clock", True)
    return Check("clock", False, "health.clock_problem", {"problem": problem})


def session_checks(db: Session, *, settings: Settings, secret: str, now: datetime) -> list[Check]:
    """The checks that only read (schema, disk, key, clock) in the caller's session."""
    return [check_schema(db), check_disk(settings), check_key(db, secret=secret),
            check_clock(db, now=now)]


def run_checks(database: Any, *, settings: Settings, secret: str, now: datetime) -> list[Check]:
    """Every check, in CHECK_NAMES order. The write probe runs in its own transaction; the
    reading checks share one read transaction (one connection checkout)."""
    probe = check_database_write(database, now=now)
    if not probe.ok:
        # Without a working database the other database checks would only repeat its error.
        return [probe, Check("schema", None), check_disk(settings), Check("key", None),
                Check("clock", None)]
    try:
        with database.transaction(write=False) as db:
            return [probe, *session_checks(db, settings=settings, secret=secret, now=now)]
    except Exception as exc:  # noqa: BLE001 - e.g. the connection dropped between the two
        failed = Check("database", False, "health.database_failed", {"error": _error_text(exc)})
        return [failed, Check("schema", None), check_disk(settings), Check("key", None),
                Check("clock", None)]


def report(checks: list[Check]) -> tuple[int, dict[str, Any]]:
    """The /healthz answer: (200 or 503, body) with every check's "ok" or English message."""
    failing = [c.name for c in checks if c.ok is False]
    body: dict[str, Any] = {
        "status": "error" if failing else "ok",
        "checks": {c.name: ("ok" if c.ok else "not checked" if c.ok is None else c.message("en"))
                   for c in checks},
    }
    if failing:
        body["failing"] = failing
    return (503 if failing else 200), body


# -- the last write probe's failure, for pages that cannot probe --------------------------------

_probe_lock = threading.Lock()
# Per database URL: a process may serve (tests: create) several apps on different databases.
_probe_failures: dict[str, tuple[float, Check]] = {}


def _url_key(bind: Any) -> str:
    return bind.url.render_as_string(hide_password=True)


def _remember_probe_failure(database: Any, failure: BaseException | Check | None) -> None:
    key = _url_key(database.engine)
    with _probe_lock:
        if failure is None:
            _probe_failures.pop(key, None)
        else:
            _probe_failures[key] = (time.monotonic(), failure if isinstance(failure, Check)
                                    else Check("database", False, "health.database_failed",
                                               {"error": _error_text(failure)}))


def recent_probe_failure(db: Session) -> Check | None:
    """The failing database check of this process's last probe of ``db``'s database, if it
    was within PROBE_MEMORY_S."""
    with _probe_lock:
        seen = _probe_failures.get(_url_key(db.get_bind()))
    if seen is None or time.monotonic() - seen[0] > PROBE_MEMORY_S:
        return None
    return seen[1]
