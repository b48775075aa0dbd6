"""Outage drill: the server is killed with SIGKILL while takers are answering, stays down for
CACT_DRILL_OUTAGE_S seconds (default 60) and is started again. No attempt loses more than 5 s
of its time left, no section moves on and no attempt is closed for time because of the
outage (a room with 30-second sections would otherwise be over), and staff see the outage
line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select

from tests.conftest import create_pg_database, drop_pg_database, pg_reachable, unavailable
from tests.e2e.conftest import ADMIN, run_cli, start_server
from tests.e2e.test_drills import Taker

pytestmark = pytest.mark.e2e

OUTAGE_S = float(os.environ.get("CACT_DRILL_OUTAGE_S", "60"))
MAX_LOSS_S = 5

SETUP = """
import json
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session
settings = get_settings()
database = Database(settings.database_url)
with database.transaction() as db:
    _, normal = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                  participants=6, code="DRILL")
    _, short = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                 participants=3, code="DRILL-SHORT", first=50,
                                 section_seconds=30)
print(json.dumps({"normal": normal, "short": short}))
"""


class TimedTaker(Taker):
    """The kill drill's taker, remembering its access header so the drill can ask the
    server how much time it has left without logging it out."""

    headers: dict | None = None

    def call(self, method: str, path: str, **kwargs):
        if "headers" in kwargs:
            self.headers = kwargs["headers"]
        return super().call(method, path, **kwargs)


def status(base: str, taker: TimedTaker) -> tuple[float, dict]:
    response = httpx.get(base + "/api/v1/taker/status", headers=taker.headers, timeout=10)
    assert response.status_code == 200, response.text
    return time.monotonic(), response.json()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (uvicorn's workers under its supervisor)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def run_drill(tmp_path, env: dict, database_url: str, outage_s: float, *serve_args: str
              ) -> str:
    """Takers answering, kill -9, ``outage_s`` seconds down, restart (``serve_args``, e.g.
    two workers), then the checks of the module docstring. Returns the drill's summary."""
    run_cli(env, "db", "upgrade")
    run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--full-name", "Admin Drill",
            "--password-stdin", stdin=ADMIN[1] + "\n")
    setup = subprocess.run([sys.executable, "-c", SETUP], env=env, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    logins = json.loads(setup.stdout.strip().splitlines()[-1])
    server, url = start_server(env, tmp_path / "first.log", *serve_args)
    base = {"url": url}
    stop = threading.Event()
    takers = [TimedTaker(base, nip, token, stop)
              for nip, token in logins["normal"] + logins["short"]]
    try:
        for taker in takers:
            taker.start()
        deadline = time.monotonic() + 30
        while not all(t.acked for t in takers):  # everyone is answering
            assert time.monotonic() < deadline, "takers did not start saving"
            time.sleep(0.2)
        time.sleep(2)
        before = {t.nip: status(url, t) for t in takers}
        workers = children(server.pid)  # with --workers, the processes that serve
        killed_at = time.monotonic()
        server.kill()  # SIGKILL: no shutdown, no last heartbeat, nothing
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        server.wait(timeout=10)
        time.sleep(outage_s)
        server, base["url"] = start_server(env, tmp_path / "second.log", *serve_args)
        up_at = time.monotonic()
        after = {t.nip: status(base["url"], t) for t in takers}

        losses = {}
        for taker in takers:
            t_before, was = before[taker.nip]
            t_after, now = after[taker.nip]
            assert now["state"] == "active", (taker.nip, was, now)
            assert now["current_section"] == was["current_section"], (taker.nip, was, now)
            # Time the server was up between the two readings counts; the outage must not.
            used = (killed_at - t_before) + (t_after - up_at)
            losses[taker.nip] = was["remaining_s"] - now["remaining_s"] - used
            assert losses[taker.nip] <= MAX_LOSS_S, (taker.nip, was, now, used)

        # The proctor console (the admin sees every session) shows the outage line.
        with httpx.Client(base_url=base["url"], timeout=10) as staff:
            page = staff.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            staff.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                       "csrf_token": csrf})
            console = staff.get("/proctor/sessions/DRILL")
            assert console.status_code == 200
        stop.set()
        for taker in takers:
            taker.join(timeout=15)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=15)

    from app.audit import AuditEvent
    from app.db import Database
    from app.delivery.models import Attempt, AttemptState
    from app.ops import outage
    from app.sessions.models import TestSession

    database = Database(database_url)
    with database.transaction(write=False) as db:
        states = list(db.scalars(select(Attempt.state)))
        record = outage.alerts(db, now=outage.last_heartbeat(db),
                               session_id=db.scalar(select(TestSession.id).where(
                                   TestSession.code == "DRILL")))
        last = outage.get_value(db, outage.LAST_OUTAGE)
        credits = list(db.scalars(select(AuditEvent.target).where(
            AuditEvent.action == "session.outage_credit").order_by(AuditEvent.target)))
    database.dispose()
    assert len(states) == len(takers) and AttemptState.expired not in states
    assert [a.code for a in record] == ["outage"]
    assert last["seconds"] >= outage_s
    # Credited once per session, however many workers started.
    assert credits == ["session:DRILL", "session:DRILL-SHORT"]
    # The console page renders the alerts (slice E's wiring) with this module's text.
    shown = record[0].text("id")
    assert shown.startswith("Server mati ") and shown in console.text, shown
    verified = subprocess.run([sys.executable, "-m", "app.cli", "audit", "verify"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return (f"{len(takers)} takers, server down {last['seconds']} s, largest loss "
            f"{max(losses.values()):.1f} s (limit {MAX_LOSS_S} s), none expired, no section "
            f"moved on; console: {shown!r}")


def test_an_outage_costs_no_taker_time(tmp_path):
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": ""}
    summary = run_drill(tmp_path, env, f"sqlite:///{tmp_path / 'data' / 'cact.sqlite3'}",
                        OUTAGE_S)
    print(f"\noutage drill (SQLite): {summary}")


def test_an_outage_costs_no_taker_time_with_two_workers_on_postgresql(tmp_path):
    """The same with PostgreSQL and two workers starting together after the outage: the
    heartbeat row lock makes one of them credit the time and the other find it done. A
    shorter outage (at most 30 s) is enough to show that."""
    problem = pg_reachable()
    if problem:
        unavailable(problem)
    url = create_pg_database("cact_outage")
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": url}
    try:
        summary = run_drill(tmp_path, env, url, min(OUTAGE_S, 30), "--workers", "2")
    finally:
        drop_pg_database(url)
    print(f"\noutage drill (PostgreSQL, 2 workers): {summary}")


BROWSER_SETUP = """
import json
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session
settings = get_settings()
database = Database(settings.database_url)
with database.transaction() as db:
    _, logins = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                  participants=1, code="BROWSER", section_seconds=20)
print(json.dumps(logins))
"""


def test_the_taker_page_waits_out_an_outage_and_carries_on(page, tmp_path):
    """Chromium on the taker page: the server dies with 17 s left in the section and stays
    down past the section's end. The page does not leave for the browser's error page when its
    countdown reaches zero; it says it is offline, and once the server is back (same address)
    it carries on in the same section with the time it had (the outage credited)."""
    from playwright.sync_api import expect

    from tests.e2e.test_taker import choose, login, start

    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": "",
           # A short outage is enough here: the threshold and heartbeat at their minimum.
           "CACT_OUTAGE_THRESHOLD_S": "5", "CACT_HEARTBEAT_INTERVAL_S": "1"}
    run_cli(env, "db", "upgrade")
    run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--full-name", "Admin Drill",
            "--password-stdin", stdin=ADMIN[1] + "\n")
    setup = subprocess.run([sys.executable, "-c", BROWSER_SETUP], env=env,
                           capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    [(nip, token)] = json.loads(setup.stdout.strip().splitlines()[-1])
    server, url = start_server(env, tmp_path / "first.log")
    try:
        login(page, url, nip, token)
        start(page)
        choose(page, 0)
        question_url = page.url
        server.kill()
        server.wait(timeout=10)
        # The countdown reaches zero while the server is gone: the page stays and says so.
        expect(page.get_by_test_id("countdown")).to_have_text("0:00", timeout=30000)
        expect(page.get_by_test_id("offline-banner")).to_be_visible(timeout=20000)
        time.sleep(3)
        assert page.url == question_url
        # Back on the same address, where the page still is.
        server, _ = start_server(env, tmp_path / "second.log", port=int(url.rsplit(":", 1)[1]))
        expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"^0:(0[4-9]|1\d)$"),
                                                              timeout=15000)
        expect(page.get_by_test_id("offline-banner")).to_be_hidden()
        assert page.url == question_url  # the same section, the same question
        choose(page, 1)  # and it still saves
    finally:
        server.terminate()
        server.wait(timeout=15)
