"""Backup drill: `cact backup` while 200 takers save answers against a real `cact serve`, then
`cact restore` into a fresh data directory (SQLite) and into a fresh PostgreSQL database.
Every answer acknowledged before the backup started is in the restored database (same or newer
seq), the restored counts and audit head equal the manifest, and the chain verifies.

The archive's SQLite snapshot is one read transaction (online backup API, pages=-1): the drill
prints the save latency before and during the backup so a stalled writer would show."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.autosave import SaveLog, percentiles, send_save, start_phase
from tests.conftest import (
    create_pg_database,
    drop_pg_database,
    pg_reachable,
    run_coroutine,
    unavailable,
)
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.e2e

TAKERS = 200
SECRET = "drill-secret-" + "k" * 40
SETUP = """
import json, os, sys
from bench.autosave import setup
print(json.dumps(setup(dict(os.environ), int(sys.argv[1]))))
"""


def cact(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


async def exam_with_backup(base: str, logins, env: dict, out: Path):
    """Log everyone in, keep 40 connections saving, run `cact backup` in the middle; returns
    (acknowledged before the backup started, all acknowledged, backup output, latencies before,
    latencies during the backup)."""
    takers, _elapsed, _lat, errors = await start_phase(base, logins, 40, 0)
    assert not errors and len(takers) == TAKERS, errors
    import random

    import httpx2 as httpx

    log, rng, stop = SaveLog(), random.Random(5), asyncio.Event()
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=40),
                                 timeout=60) as client:
        async def worker() -> None:
            while not stop.is_set():
                await send_save(client, takers[rng.randrange(len(takers))], rng, log)

        workers = [asyncio.create_task(worker()) for _ in range(40)]
        await asyncio.sleep(4)
        before = dict(log.acked)  # every one of these was committed before the snapshot
        mark = len(log.latencies)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "backup", "--out", str(out), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
        during = log.latencies[mark:]
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*workers)
    assert process.returncode == 0, stderr.decode()
    assert not log.errors, dict(log.errors)
    return before, dict(log.acked), stdout.decode(), log.latencies[:mark], during


def stored_answers(url: str) -> dict[tuple[int, int], int]:
    from app.db import Database
    from app.delivery.models import Answer

    database = Database(url)
    try:
        with database.transaction(write=False) as db:
            return {(a, i): s for a, i, s in db.execute(
                select(Answer.attempt_id, Answer.item_id, Answer.seq))}
    finally:
        database.dispose()


def restore_event_prev_hash(url: str) -> str:
    from app.audit import AuditEvent
    from app.db import Database

    database = Database(url)
    try:
        with database.transaction(write=False) as db:
            event = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    finally:
        database.dispose()
    assert event.action == "backup.restore"
    return event.prev_hash


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_under_load_restores_every_acknowledged_answer(backend, tmp_path):
    made: list[str] = []
    if backend == "postgresql":
        problem = pg_reachable()
        if problem:
            unavailable(problem)
        source_url = create_pg_database("cact_drill")
        made.append(source_url)
    else:
        source_url = ""
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"),
           "CACT_DATABASE_URL": source_url, "CACT_SECRET_KEY": SECRET}
    env.pop("CACT_CONFIG", None)
    try:
        setup = subprocess.run([sys.executable, "-c", SETUP, str(TAKERS)], env=env,
                               capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stderr
        logins = json.loads(setup.stdout.strip().splitlines()[-1])
        server, base = start_server(env, tmp_path / "server.log")
        try:
            # In a thread of its own: a browser test before this one leaves sync Playwright's
            # event loop running in the main thread, where asyncio.run fails.
            before, acked, output, calm, during = run_coroutine(
                exam_with_backup(base, logins, env, tmp_path / "out"))
        finally:
            server.terminate()
            server.wait(timeout=30)
        assert len(before) > 150, "too few saves before the backup to mean anything"
        assert len(acked) > len(before)
        archive = next((tmp_path / "out").glob("cact-backup-*.tar.gz"))
        manifest_text = subprocess.run(["tar", "-xOzf", str(archive), "manifest.json"],
                                       capture_output=True, text=True, check=True).stdout
        manifest = json.loads(manifest_text)
        assert manifest["backend"] == backend
        assert manifest["counts"]["attempts"] == TAKERS

        # Restore into a fresh target: a new data directory (its key file comes from the
        # archive) or a new PostgreSQL database.
        if backend == "sqlite":
            target_url = ""
            target = {**env, "CACT_DATA_DIR": str(tmp_path / "standby"),
                      "CACT_DATABASE_URL": ""}
            target.pop("CACT_SECRET_KEY")
        else:
            target_url = create_pg_database("cact_drill_restore")
            made.append(target_url)
            target = {**env, "CACT_DATA_DIR": str(tmp_path / "standby"),
                      "CACT_DATABASE_URL": target_url}
        t0 = time.perf_counter()
        restored = cact(target, "restore", str(archive))
        restore_seconds = time.perf_counter() - t0
        assert restored.returncode == 0, restored.stdout + restored.stderr
        for name in ("answers", "answer_events", "attempts", "audit_events"):
            count = manifest["counts"][name]
            assert f"{name}: {count} = {count} ok" in restored.stdout
        url = target_url or f"sqlite:///{tmp_path / 'standby' / 'cact.sqlite3'}"
        stored = stored_answers(url)
        missing = [(key, seq) for key, seq in before.items() if stored.get(key, 0) < seq]
        assert not missing, f"{len(missing)} acknowledged answers missing, e.g. {missing[:3]}"
        assert len(stored) == manifest["counts"]["answers"]
        assert restore_event_prev_hash(url) == manifest["audit_head"]
        verified = cact(target, "audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr

        # A second restore onto the restored target is refused.
        again = cact(target, "restore", str(archive))
        assert again.returncode == 1 and "restore refused" in again.stderr

        backup_line = next(line for line in output.splitlines() if " bytes in " in line)
        print(f"\nbackup drill ({backend}, {TAKERS} takers): {len(before)} answers acknowledged "
              f"before the backup, all restored; {backup_line.strip()}; restore "
              f"{restore_seconds:.1f} s; save latency before: {percentiles(calm)}; during the "
              f"backup ({len(during)} saves): {percentiles(during)}")
    finally:
        for url in made:
            drop_pg_database(url)


def test_a_running_server_backs_up_an_open_session_once_per_interval(tmp_path):
    """Two `cact serve` workers with automatic backups on: soon after the start one archive of
    the open session appears in CACT_BACKUP_DIR, made by one worker only, and is recorded."""
    from tests.e2e.conftest import SETUP_EXAMS, run_cli

    usb = tmp_path / "usb"
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": "",
           "CACT_BACKUP_INTERVAL_MIN": "1", "CACT_BACKUP_DIR": str(usb),
           "CACT_BACKUP_KEEP": "3", "CACT_SECRET_KEY": SECRET}
    env.pop("CACT_CONFIG", None)
    run_cli(env, "db", "upgrade")
    setup = subprocess.run([sys.executable, "-c", SETUP_EXAMS], env=env, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    server, _base = start_server(env, tmp_path / "server.log", "--workers", "2")
    try:
        deadline = time.monotonic() + 30
        while not list(usb.glob("cact-backup-*.tar.gz")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(4)  # the other worker's first look has passed too
        archives = list(usb.glob("cact-backup-*.tar.gz"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(archives) == 1, (archives, (tmp_path / "server.log").read_text()[-3000:])
    assert oct(archives[0].stat().st_mode & 0o777) == "0o600"
    assert not [p for p in usb.iterdir() if p.name.startswith(".cact-backup-")
                and p.name != ".cact-backup.lock"]  # no half-written leftovers
    from app.db import Database
    from app.ops import backup

    database = Database(f"sqlite:///{tmp_path / 'data' / 'cact.sqlite3'}")
    try:
        with database.transaction(write=False) as db:
            last = backup.last_backup(db)
    finally:
        database.dispose()
    assert last["path"] == str(archives[0]) and last["actor"] == "server"
    restored = cact({**env, "CACT_DATA_DIR": str(tmp_path / "standby")}, "restore",
                    str(archives[0]))
    assert restored.returncode == 0, restored.stdout + restored.stderr
