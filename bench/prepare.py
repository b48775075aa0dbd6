"""Preparing a session: every taker's 112-item form drawn in bulk (app/sessions/prepare.py),
against drawing the same forms one login at a time as before preparation existed.

    .venv/bin/python bench/prepare.py --takers 5000
    .venv/bin/python bench/prepare.py --takers 5000 \\
        --db postgresql+psycopg://postgres@127.0.0.1/cactbench

The sample banks and the half-day blueprint (112 items in three sections); a scheduled session
with N participants; then `prepare_session` in one transaction, timed (and its peak memory);
then, on a second session of the same N, the old way: one transaction per taker, each drawing
and writing its form with `build_attempt_form` (the work a login did at 08:00).
"""

from __future__ import annotations

import argparse
import resource
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takers", type=int, default=5000)
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--skip-old", action="store_true", help="only the bulk preparation")
    args = parser.parse_args()

    import os

    os.environ.update({"CACT_DATA_DIR": tempfile.mkdtemp(prefix="cact-prepare-"),
                       "CACT_DATABASE_URL": args.db, "CACT_SECRET_KEY": "p" * 48})
    if args.db.startswith("postgresql"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = make_url(args.db)
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        admin.dispose()

    from sqlalchemy import func, select

    from app.clock import SystemClock
    from app.db import Database, upgrade
    from app.delivery.attempts import build_attempt_form
    from app.delivery.models import Attempt, AttemptItem, AttemptState
    from app.sessions.models import RosterEntry, TestSession
    from app.sessions.prepare import prepare_session
    from app.sessions.roster import RosterRow, import_roster
    from app.sessions.service import create_session
    from app.settings import get_settings
    from bench.autosave import import_samples

    settings = get_settings()
    upgrade(settings.database_url)
    database = Database(settings.database_url)
    secret = settings.resolved_secret()
    now = SystemClock().now()
    with database.transaction() as db:
        blueprint = import_samples(db, now)
        for code, first in (("BULK", 0), ("OLD", args.takers)):
            session = create_session(db, code=code, name=code, room="",
                                     blueprint_code=blueprint.code, starts_at=now,
                                     ends_at=now + timedelta(hours=8), actor="bench", now=now)
            rows = [RosterRow(nip=f"19900101202001{n:04d}", name=f"Bench {n}",
                              job_group="pengawas") for n in range(first, first + args.takers)]
            import_roster(db, session=session, rows=rows, secret=secret, actor="bench", now=now)

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with database.transaction() as db:
        session = db.scalar(select(TestSession).where(TestSession.code == "BULK"))
        done = prepare_session(db, session=session, actor="bench", now=now)
    bulk_s = time.perf_counter() - started
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with database.transaction(write=False) as db:
        rows = db.scalar(select(func.count()).select_from(AttemptItem))
    print(f"{database.engine.dialect.name}: prepare {done.drawn} forms, {rows} item rows: "
          f"{bulk_s:.1f} s ({rows / bulk_s:,.0f} rows/s), peak RSS +"
          f"{(peak_after - peak_before) / 1024:.0f} MiB (process {peak_after / 1024:.0f} MiB)")
    if not args.skip_old:
        with database.transaction(write=False) as db:
            session_id = db.scalar(select(TestSession.id).where(TestSession.code == "OLD"))
            entries = db.scalars(select(RosterEntry.id)
                                 .where(RosterEntry.session_id == session_id)).all()
        started = time.perf_counter()
        for entry_id in entries:  # one login at a time, each its own transaction
            with database.transaction() as db:
                session = db.get_one(TestSession, session_id)
                attempt = Attempt(roster_entry_id=entry_id, session_id=session_id,
                                  seed=secrets.randbits(62), state=AttemptState.not_started)
                db.add(attempt)
                db.flush()
                build_attempt_form(db, attempt, session)
        old_s = time.perf_counter() - started
        print(f"{database.engine.dialect.name}: the same forms one login at a time: "
              f"{old_s:.1f} s ({old_s / len(entries) * 1000:.1f} ms per taker); "
              f"bulk is {old_s / bulk_s:.1f}x faster")
    database.dispose()


if __name__ == "__main__":
    main()
