"""Session start in process (no HTTP): login, start and first page for N takers, with the
frozen-content cache (app/delivery/content.py) emptied before every taker and kept warm.

    .venv/bin/python bench/session_start.py --takers 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.autosave import setup  # noqa: E402 - after the path is set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takers", type=int, default=200)
    args = parser.parse_args()
    logins = setup({"CACT_DATA_DIR": tempfile.mkdtemp(prefix="cact-start-"),
                    "CACT_DATABASE_URL": "", "CACT_SECRET_KEY": "b" * 48}, 2 * args.takers)

    from app.clock import SystemClock
    from app.db import Database
    from app.delivery import attempts, content, timing
    from app.delivery.views import attempt_view
    from app.settings import get_settings

    settings = get_settings()
    database = Database(settings.database_url)
    secret = settings.resolved_secret()

    def run(batch, cached: bool) -> float:
        started = time.perf_counter()
        for nip, token in batch:
            if not cached:
                content.forget(database.engine)
            with database.transaction() as db:
                result = attempts.login(db, nip=nip, token=token, workstation="pc-" + nip,
                                        client_addr="bench", secret=secret,
                                        now=SystemClock().now())
            with database.transaction() as db:
                attempt = attempts.attempt_for_access_token(db, token=result.access_token,
                                                            secret=secret)
                timing.start(db, attempt=attempt, now=SystemClock().now())
                attempt_view(db, attempt=attempt, now=SystemClock().now())
        return (time.perf_counter() - started) / len(batch) * 1000

    print(f"login + start + first page, content read every time: "
          f"{run(logins[:args.takers], False):.1f} ms per taker")
    print(f"login + start + first page, frozen content cached:  "
          f"{run(logins[args.takers:], True):.1f} ms per taker")
    database.dispose()


if __name__ == "__main__":
    main()
