"""/healthz names the check that fails (database, schema, disk, key, clock), staff see the same
problems as alert lines on the proctor console and the admin dashboard, and /metrics exposes
requests, saves and the database's gauges in Prometheus' text format, to allowed addresses and
admins only, summed over every worker of a real `cact serve --workers 2`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from app.bank.models import Item
from app.delivery.models import AttemptItem
from app.ops import health, metrics
from app.ops.state import get_value, set_value
from tests.conftest import staff_login
from tests.factories import make_open_session

LOCAL = ("127.0.0.1", 40000)  # a client address in the default CACT_METRICS_ALLOW_IPS


def healthz(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


def test_a_healthy_server_answers_200_with_every_check_ok(client, database):
    status, body = healthz(client)
    assert status == 200, body
    assert body["status"] == "ok" and "failing" not in body
    assert body["checks"] == dict.fromkeys(health.CHECK_NAMES, "ok")
    # The probe really wrote: its row carries this process's id.
    with database.transaction(write=False) as db:
        assert get_value(db, "health_probe") == {"pid": os.getpid()}


def test_a_wrong_schema_revision_is_named(client, database):
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(database.url))
    head = script.get_current_head()
    older = script.get_revision(head).down_revision
    assert older, "the test needs a revision before the head"
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
    try:
        status, body = healthz(client)
    finally:
        with database.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert status == 503, body
    assert body["status"] == "error" and body["failing"] == ["schema"]
    message = body["checks"]["schema"]
    assert older in message and head in message and "cact db upgrade" in message
    assert healthz(client)[0] == 200  # and back once the revision is right again


def test_a_nearly_full_disk_is_named(client, settings):
    # The data folder does not exist yet on PostgreSQL: the disk it will be on counts.
    free_mb = shutil.disk_usage(settings.data_dir.parent).free // health.MiB
    assert abs(health.disk_free_bytes(settings) // health.MiB - free_mb) < 50
    # Simulated: the disk has 50 MB less than the threshold left (others write meanwhile).
    settings.disk_min_free_mb = free_mb + 50
    status, body = healthz(client)
    assert status == 503 and body["failing"] == ["disk"], body
    assert f"(at least {free_mb + 50} MB needed)" in body["checks"]["disk"]
    settings.disk_min_free_mb = free_mb // 2
    assert healthz(client)[0] == 200


def test_a_wrong_key_is_named_without_revealing_it(client, app, database, clock, settings):
    from app.ops import keycheck

    with database.transaction(write=False) as db:
        recorded = get_value(db, keycheck.STATE_NAME)
    assert recorded["fingerprint"] == keycheck.fingerprint(app.state.secret)
    # The database is swapped under the running server for one made with another key.
    other = keycheck.fingerprint("another-key-" + "z" * 40)
    with database.transaction() as db:
        set_value(db, keycheck.STATE_NAME, {"fingerprint": other}, now=clock.now())
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["failing"] == ["key"], body
    assert "CACT_SECRET_KEY" in body["checks"]["key"]
    # Public endpoint: neither fingerprint, the key or a path of the server is in it.
    for secret in (other, keycheck.fingerprint(app.state.secret), app.state.secret,
                   str(settings.data_dir), "secret_key"):
        assert secret not in response.text


def test_an_unwritable_database_is_named(client, database, backend):
    """The probe writes: a database that still answers queries but refuses writes fails (a
    trigger stands in for a read-only file or a full disk)."""
    refuse = "attempt to write a readonly database"
    if backend == "sqlite":
        create = [f"CREATE TRIGGER no_probe_{op} BEFORE {op} ON server_state BEGIN "
                  f"SELECT RAISE(ABORT, '{refuse}'); END" for op in ("INSERT", "UPDATE")]
        drop = ["DROP TRIGGER no_probe_INSERT", "DROP TRIGGER no_probe_UPDATE"]
    else:
        create = ["CREATE FUNCTION no_probe() RETURNS trigger LANGUAGE plpgsql AS "
                  f"$$ BEGIN RAISE EXCEPTION '{refuse}'; END $$",
                  "CREATE TRIGGER no_probe BEFORE INSERT OR UPDATE ON server_state "
                  "FOR EACH ROW EXECUTE FUNCTION no_probe()"]
        drop = ["DROP TRIGGER no_probe ON server_state", "DROP FUNCTION no_probe()"]
    with database.engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        status, body = healthz(client)
    finally:
        with database.engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))
    assert status == 503 and body["failing"] == ["database"], body
    assert refuse in body["checks"]["database"] and "Answers are not being stored" in \
        body["checks"]["database"]
    assert body["checks"]["schema"] == "not checked"
    assert healthz(client)[0] == 200


RESTORE_WRITER = """
import os, sys
from sqlalchemy import text
from app.clock import SystemClock
from app.db import Database
from app.demo import load_demo
from app.ops.state import set_value
from app.settings import Settings
settings = Settings(data_dir=sys.argv[2], database_url=sys.argv[1], secret_key="r" * 40)
db = Database(sys.argv[1])
with db.transaction() as s:  # pages the backup does not have
    load_demo(s, settings=settings, now=SystemClock().now())
with db.engine.connect() as c:
    c.exec_driver_sql("PRAGMA wal_checkpoint").fetchall()
with db.transaction() as s:  # then changes that live only in the -wal
    s.execute(text("UPDATE participants SET name = name || ' x'"))
    for i in range(50):
        set_value(s, f"after-{i}", {"v": "y" * 300}, now=SystemClock().now())
os._exit(0)  # killed: no last checkpoint, the -wal and -shm stay
"""


def test_a_backup_copied_beside_an_old_wal_is_named(tmp_path, clock):
    """The case seen on a lab server: the file copied back while the old -wal/-shm stayed.
    Every query still answers, so only SQLite's own page check can tell."""
    from app.db import Database, upgrade
    from app.main import create_app
    from app.settings import Settings

    url = f"sqlite:///{tmp_path / 'cact.sqlite3'}"
    upgrade(url)
    shutil.copyfile(tmp_path / "cact.sqlite3", tmp_path / "backup.sqlite3")  # server stopped
    done = subprocess.run([sys.executable, "-c", RESTORE_WRITER, url, str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cact.sqlite3-wal").stat().st_size > 0
    shutil.copyfile(tmp_path / "backup.sqlite3", tmp_path / "cact.sqlite3")  # the bad restore
    database = Database(url)
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key="r" * 40)
    try:
        with TestClient(create_app(settings, clock=clock, database=database)) as client:
            status, body = healthz(client)
        assert status == 503 and body["failing"] == ["database"], body
        assert "damaged" in body["checks"]["database"]
        assert "-wal/-shm" in body["checks"]["database"]
    finally:
        database.dispose()


def test_an_unreachable_database_is_named(tmp_path, clock):
    """A real connection attempt to a closed port: the database check fails with how to fix
    it, the checks that need the database are not run, the disk is still looked at."""
    from app.db import Database
    from app.settings import Settings

    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key="u" * 40)
    database = Database(url)
    try:
        checks = health.run_checks(database, settings=settings, secret="u" * 40,
                                   now=clock.now())
    finally:
        database.dispose()
    status, body = health.report(checks)
    assert status == 503 and body["failing"] == ["database"], body
    assert "cannot connect" in body["checks"]["database"]
    assert "systemctl status postgresql" in body["checks"]["database"]
    assert body["checks"]["disk"] == "ok" and body["checks"]["key"] == "not checked"


# -- alert lines ----------------------------------------------------------------------------------


def _alert_codes(html: str) -> list[str]:
    return re.findall(r'data-testid="system-alert" data-code="([^"]+)"', html)


def test_staff_see_the_failing_check_as_an_alert_line(client, app, database, clock, settings,
                                                      make_user):
    password = make_user("admin")
    with database.transaction() as db:
        session, _ = make_open_session(db, clock, secret=app.state.secret, participants=1)
        code = session.code
    assert staff_login(client, "admin", password).status_code == 303
    pages = ("/admin", "/admin/peringatan", f"/proctor/sessions/{code}",
             f"/proctor/sessions/{code}/peringatan")
    for page in pages:  # healthy: no line at all
        response = client.get(page)
        assert response.status_code == 200 and _alert_codes(response.text) == [], page

    settings.disk_min_free_mb = 10**9  # a petabyte: no lab disk has that free
    for page in pages:
        response = client.get(page)
        assert _alert_codes(response.text) == ["health_disk"], page
        assert "Ruang disk: sisa ruang disk untuk data hanya" in response.text, page
    console = client.get(f"/proctor/sessions/{code}").text
    # The console refreshes the lines by itself (the page is never reloaded during an exam).
    assert f'hx-get="/proctor/sessions/{code}/peringatan" hx-trigger="every 15s"' in console
    assert 'hx-get="/admin/peringatan" hx-trigger="every 15s"' in client.get("/admin").text
    client.cookies.set("cact_lang", "en")
    assert "Disk space: only " in client.get("/admin/peringatan").text


def test_alert_lines_gather_outage_and_backup_lines_errors_first(app, client, database, clock,
                                                                 settings, make_user):
    """The outage and backup modules' own lines (from their ServerState rows) join the failing
    checks; a clock jump is shown once (the outage module's line), not also as the check."""
    from datetime import timedelta

    from app.ops import backup, outage

    password = make_user("admin")
    now = clock.now()
    with database.transaction() as db:
        session, _ = make_open_session(db, clock, secret=app.state.secret, participants=1)
        code, session_id = session.code, session.id
        set_value(db, outage.LAST_OUTAGE, {"until": (now - timedelta(minutes=5)).isoformat(),
                                           "sessions": [session_id], "seconds": 40}, now=now)
        set_value(db, outage.CLOCK_JUMP, {"at": (now - timedelta(minutes=1)).isoformat(),
                                          "seconds": 120}, now=now)
        set_value(db, backup.LAST_BACKUP, {"at": (now - timedelta(minutes=3)).isoformat(),
                                           "path": "/media/usb/cact-1.tar"}, now=now)
    settings.disk_min_free_mb = 10**9
    assert staff_login(client, "admin", password).status_code == 303
    for page in (f"/proctor/sessions/{code}/peringatan", "/admin/peringatan"):
        html = client.get(page).text
        assert _alert_codes(html) == ["health_disk", "outage", "clock_jump", "backup_age"], page
        assert "Server mati" in html and "Jam server melompat maju" in html, page
    with database.transaction(write=False) as db:
        checks = {c.name: c.ok for c in health.session_checks(
            db, settings=settings, secret=app.state.secret, now=now)}
    assert checks["clock"] is False  # /healthz still names the clock


# -- /metrics -------------------------------------------------------------------------------------


def _sample(exposition: str, name: str, **labels: str) -> float | None:
    for line in exposition.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _save_some(app, database, clock, client: TestClient, saves: int) -> list[int]:
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=app.state.secret, participants=1)
    login = client.post("/api/v1/taker/login", json={"nip": logins[0][0], "token": logins[0][1]})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert client.get("/api/v1/taker/attempt", headers=headers).status_code == 200
    with database.transaction(write=False) as db:
        rows = db.execute(select(AttemptItem.item_id, AttemptItem.option_order, Item.kind)
                          .join(Item, Item.id == AttemptItem.item_id)
                          .where(AttemptItem.section == select(func.min(AttemptItem.section))
                                 .scalar_subquery())
                          .order_by(AttemptItem.position)).all()
    ids = []
    for seq in range(1, saves + 1):
        item_id, _, kind = rows[(seq - 1) % len(rows)]
        answer = [1] if kind.value == "multiple" else 1  # the first option shown (its place)
        saved = client.put(f"/api/v1/taker/answers/{item_id}", headers=headers,
                           json={"response": answer, "seq": seq})
        assert saved.status_code == 200, saved.text
        ids.append(item_id)
    unknown = client.put("/api/v1/taker/answers/999999", headers=headers,
                         json={"response": None, "seq": saves + 1})
    assert 400 <= unknown.status_code < 500, unknown.text
    return ids


def test_metrics_expose_save_latency_requests_and_gauges(app, database, clock):
    from datetime import timedelta

    from app.ops import backup

    with TestClient(app, client=LOCAL) as local:
        item_ids = _save_some(app, database, clock, local, saves=5)
        local.get("/no/such/page/12345")
        assert _sample(local.get("/metrics").text, "cact_last_backup_age_seconds") is None
        with database.transaction() as db:
            set_value(db, backup.LAST_BACKUP, {"at": (clock.now() - timedelta(seconds=90))
                                               .isoformat(), "path": "/b/1.tar"}, now=clock.now())
        response = local.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = response.text
    save = "/api/v1/taker/answers/{item_id}"
    assert _sample(out, "cact_answer_save_duration_seconds_count", outcome="ok") == 5
    assert _sample(out, "cact_answer_save_duration_seconds_bucket", outcome="ok",
                   le="+Inf") == 5
    assert _sample(out, "cact_answer_save_duration_seconds_bucket", outcome="ok",
                   le="10.0") == 5
    assert _sample(out, "cact_answer_save_duration_seconds_sum", outcome="ok") > 0
    assert _sample(out, "cact_answer_save_duration_seconds_count", outcome="refused") == 1
    assert _sample(out, "cact_http_requests_total", method="PUT", route=save,
                   status="200") == 5
    assert _sample(out, "cact_http_request_duration_seconds_count", method="PUT",
                   route=save) >= 6
    assert _sample(out, "cact_http_requests_total", method="POST",
                   route="/api/v1/taker/login", status="200") == 1
    # A 404 is counted without its path; no id or token ever becomes a label.
    assert _sample(out, "cact_http_errors_total", status="404", route="<unmatched>") == 1
    assert "12345" not in out
    for item_id in item_ids:
        assert f"/answers/{item_id}" not in out
    # Gauges read from the database when scraped.
    assert _sample(out, "cact_database_up") == 1
    assert _sample(out, "cact_live_attempts") == 1
    assert _sample(out, "cact_open_sessions") == 1
    assert _sample(out, "cact_disk_free_bytes") > 0
    assert _sample(out, "cact_last_backup_age_seconds") == 90


def test_metrics_only_for_allowed_addresses_and_admins(app, client, make_user):
    # The test client's address ("testclient") is not in CACT_METRICS_ALLOW_IPS.
    refused = client.get("/metrics", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    assert "cact_http" not in refused.text
    password = make_user("pak.budi", "proctor")
    assert staff_login(client, "pak.budi", password).status_code == 303
    assert client.get("/metrics").status_code == 403
    admin_password = make_user("admin")
    client.post("/logout", data={"csrf_token": ""})
    with TestClient(app) as admin:
        assert staff_login(admin, "admin", admin_password).status_code == 303
        scraped = admin.get("/metrics")
        assert scraped.status_code == 200 and "cact_http_requests_total" in scraped.text
    app.state.settings.metrics_allow_ips = "10.0.0.0/8"
    with TestClient(app, client=("10.1.2.3", 5000)) as prometheus:
        assert prometheus.get("/metrics").status_code == 200
    with TestClient(app, client=LOCAL) as local:  # no longer in the list
        assert local.get("/metrics", follow_redirects=False).status_code == 303


def test_allowed_addresses():
    allow = "127.0.0.1,::1, 192.168.10.0/24"
    assert metrics.allowed_address("127.0.0.1", allow)
    assert metrics.allowed_address("::1", allow)
    assert metrics.allowed_address("::ffff:127.0.0.1", allow)
    assert metrics.allowed_address("192.168.10.77", allow)
    assert not metrics.allowed_address("192.168.11.1", allow)
    assert not metrics.allowed_address("testclient", allow)
    assert not metrics.allowed_address(None, allow)
    assert not metrics.allowed_address("10.0.0.1", "not-an-address")
    assert metrics.allowed_address("10.0.0.1", "*")


# -- several workers ------------------------------------------------------------------------------


def test_requests_over_two_workers_are_all_counted(tmp_path):
    """A real `cact serve --workers 2`: every request is counted once, whichever worker took
    it, and both workers took some."""
    from tests.e2e.conftest import run_cli, start_server

    config = tmp_path / "cact.env"  # empty: only this environment counts
    config.write_text("")
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path), "CACT_DATABASE_URL": "",
           "CACT_CONFIG": str(config)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    run_cli(env, "db", "upgrade")
    stale = tmp_path / "metrics" / "counter_999999.db"  # left by an earlier run: wiped
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    proc, base = start_server(env, tmp_path / "server.log", "--workers", "2")
    try:
        assert not stale.exists()

        def fetch(_):
            with urllib.request.urlopen(base + "/docs", timeout=10) as response:
                assert response.status == 200

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while sent < 2000:
                list(pool.map(fetch, range(40)))
                sent += 40
                pids = {p.stem.rsplit("_", 1)[1] for p in (tmp_path / "metrics").glob(
                    "counter_*.db")}
                if len(pids) >= 2:
                    break
        assert len(pids) == 2, f"one worker took all {sent} requests"
        time.sleep(0.2)
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            out = response.read().decode()
        assert _sample(out, "cact_http_requests_total", method="GET", route="/docs",
                       status="200") == sent
        assert _sample(out, "cact_http_request_duration_seconds_count", method="GET",
                       route="/docs") == sent
        assert _sample(out, "cact_database_up") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_metrics_folder_is_wiped_and_falls_back_when_unwritable(tmp_path, monkeypatch):
    from prometheus_client import values

    from app.settings import Settings

    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    # prepare_for_workers switches prometheus-client to multiprocess values: switched back
    # after the test, so later apps of this test process count in their own registries.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    settings = Settings(data_dir=tmp_path, secret_key="m" * 40)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"old")
    folder = metrics.prepare_for_workers(settings)
    assert folder == tmp_path / "metrics" and list(folder.iterdir()) == []
    assert os.environ[metrics.MULTIPROC_ENV] == str(folder)
    blocked = tmp_path / "file"  # a data directory that is a file: no folder can be made in it
    blocked.write_text("")
    other = metrics.prepare_for_workers(Settings(data_dir=blocked, secret_key="m" * 40))
    assert other.is_dir() and other.name.startswith("cact-metrics-")
    assert os.environ[metrics.MULTIPROC_ENV] == str(other)
    assert values.ValueClass is not values.MutexValue  # the switch happened
    shutil.rmtree(other)
