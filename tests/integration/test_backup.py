"""`cact backup` / `cact restore` on a real SQLite file and a real PostgreSQL database: the round
trip keeps every answer and the audit head, a non-empty target is refused (unless --force), stale
-wal/-shm files are removed, a tampered archive is detected, the key comes back with the data,
and the automatic backups during an open session keep the newest N."""

from __future__ import annotations

import fcntl
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit import AuditEvent
from app.db import Database
from app.delivery.models import Answer
from app.ops import backup
from app.ops.archive import BackupError, read_manifest
from app.ops.restore import restore
from app.ops.state import get_value, set_value
from app.sessions.models import SessionState, TestSession
from app.settings import Settings
from tests.conftest import FAST_ARGON2, create_pg_database, drop_pg_database
from tests.factories import make_open_session


def seed(app, database, settings, clock, takers: int = 3) -> list[tuple[str, str]]:
    """An open session whose takers logged in and saved answers through the API."""
    with database.transaction() as db:
        _session, logins = make_open_session(db, clock, secret=settings.secret_key,
                                              participants=takers)
    with TestClient(app) as client:
        for nip, token in logins:
            login = client.post("/api/v1/taker/login", json={"nip": nip, "token": token})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            form = client.get("/api/v1/taker/attempt", headers=headers).json()
            items = [i for i in form["items"] if i["stem"] is not None]
            for seq, item in enumerate(items + items[:2], 1):
                option = item["options"][seq % len(item["options"])]["id"]
                body = {"response": [option] if item["kind"] == "multiple" else option,
                        "seq": seq}
                saved = client.put(f"/api/v1/taker/answers/{item['item_id']}", json=body,
                                   headers=headers)
                assert saved.status_code == 200 and saved.json()["stored_seq"] == seq
    return logins


def answers(database) -> dict:
    with database.transaction(write=False) as db:
        return {(a.attempt_id, a.item_id): (a.seq, a.response)
                for a in db.scalars(select(Answer))}


def target_settings(backend: str, tmp_path: Path, **extra) -> Settings:
    """Settings of an empty target: a fresh data directory (SQLite) or a fresh PostgreSQL
    database (dropped by the caller)."""
    url = "" if backend == "sqlite" else create_pg_database("cact_restore")
    return Settings(data_dir=tmp_path / "restored", database_url=url, **FAST_ARGON2, **extra)


def cleanup(settings: Settings) -> None:
    if not settings.is_sqlite:
        drop_pg_database(settings.database_url)


def test_round_trip_keeps_answers_audit_head_and_key(backend, app, database, settings, clock,
                                                     tmp_path):
    logins = seed(app, database, settings, clock)
    before = answers(database)
    assert len(before) >= 9
    result = backup.create_backup(settings, tmp_path / "out", now=clock.now())
    manifest = result.manifest
    assert result.path.name.startswith("cact-backup-") and result.path.name.endswith(".tar.gz")
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [result.path.name]  # no leftovers
    assert manifest["backend"] == backend
    assert manifest["counts"]["answers"] == len(before)
    assert manifest["counts"]["attempts"] == 3
    assert manifest["counts"]["answer_events"] >= len(before)
    assert manifest["secret_source"] == "CACT_SECRET_KEY"
    with tarfile.open(result.path) as tar:
        assert sorted(tar.getnames()) == sorted(
            ["manifest.json", "secret_key", manifest["database_member"]])
        assert tar.extractfile("secret_key").read().decode().strip() == settings.secret_key
    with database.transaction(write=False) as db:
        head = db.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    assert manifest["audit_head"] == head

    target = target_settings(backend, tmp_path)
    try:
        report = restore(target, result.path, now=clock.now())
        assert report.ok, report.lines
        assert any(line.startswith("audit head:") and line.endswith(" ok")
                   for line in report.lines)
        # The key file came back (mode 0600) and the database accepts it.
        assert target.secret_file.read_text().strip() == settings.secret_key
        assert oct(target.secret_file.stat().st_mode & 0o777) == "0o600"
        restored = Database(target.database_url)
        try:
            assert answers(restored) == before
            with restored.transaction(write=False) as db:
                restore_event = db.scalars(select(AuditEvent).order_by(
                    AuditEvent.id.desc()).limit(1)).one()
            assert restore_event.action == "backup.restore"
            assert restore_event.prev_hash == manifest["audit_head"]
            # A server on the restored data accepts a token printed before the backup.
            from app.main import create_app

            restored_app = create_app(target, clock=clock, database=restored)
            with TestClient(restored_app) as client:
                nip, token = logins[0]
                login = client.post("/api/v1/taker/login", json={"nip": nip, "token": token})
                assert login.status_code == 200, login.text
        finally:
            restored.dispose()

        # The restored app's worker wrote a heartbeat: "serving" until it is 3 intervals old.
        with pytest.raises(BackupError, match="is serving"):
            restore(target, result.path, force=True, now=clock.now())
        clock.advance(3 * target.heartbeat_interval_s + 1)
        # A second restore onto the now non-empty target is refused and changes nothing.
        with pytest.raises(BackupError, match="--force"):
            restore(target, result.path, now=clock.now())
        # --force restores over it (SQLite: the old file is moved aside, not deleted).
        report = restore(target, result.path, force=True, now=clock.now())
        assert report.ok, report.lines
        if backend == "sqlite":
            assert report.moved_aside and all(p.exists() for p in report.moved_aside)
        restored = Database(target.database_url)
        try:
            assert answers(restored) == before
        finally:
            restored.dispose()

        # Across backends: refused with a clear message.
        other = Settings(data_dir=tmp_path / "other",
                         database_url="postgresql+psycopg://x@127.0.0.1/none"
                         if backend == "sqlite" else "", **FAST_ARGON2)
        with pytest.raises(BackupError, match="across backends"):
            restore(other, result.path, now=clock.now())
        # CACT_SECRET_KEY set to another key: refused before anything changes.
        wrong = target.model_copy(update={"secret_key": "w" * 40})
        with pytest.raises(BackupError, match="CACT_SECRET_KEY .* is not the key"):
            restore(wrong, result.path, force=True, now=clock.now())
    finally:
        cleanup(target)


def test_restore_refuses_a_database_being_served(backend, app, database, settings, clock,
                                                 tmp_path):
    seed(app, database, settings, clock, takers=1)
    archive = backup.create_backup(settings, tmp_path / "out", now=clock.now()).path
    target = target_settings(backend, tmp_path)
    try:
        assert restore(target, archive, now=clock.now()).ok
        live = Database(target.database_url)
        try:
            with live.transaction() as db:  # what a running worker writes every 2 s
                set_value(db, "heartbeat", {"at": clock.now().isoformat(), "pid": 1,
                                            "host": "lab"}, now=clock.now())
        finally:
            live.dispose()
        with pytest.raises(BackupError, match="is serving"):
            restore(target, archive, force=True, now=clock.now())
        # Once the heartbeat is old (the server stopped), --force may go ahead.
        later = clock.now() + timedelta(seconds=3 * target.heartbeat_interval_s + 1)
        assert restore(target, archive, force=True, now=later).ok
    finally:
        cleanup(target)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_stale_wal_and_shm_are_removed(backend, app, database, settings, clock, tmp_path):
    """The field report: a backup copied beside another database's -wal/-shm gave 'database
    disk image is malformed'. Restore removes them and the result passes integrity_check."""
    seed(app, database, settings, clock, takers=2)
    before = answers(database)
    archive = backup.create_backup(settings, tmp_path / "out", now=clock.now()).path
    target = target_settings("sqlite", tmp_path)
    db_path = target.data_dir / "cact.sqlite3"
    target.data_dir.mkdir(parents=True)
    # Real -wal/-shm of another database, left behind by a server that was not shut down.
    other = tmp_path / "other.sqlite3"
    writer = sqlite3.connect(other)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE answers (x)")
    writer.executemany("INSERT INTO answers VALUES (?)", [(n,) for n in range(500)])
    writer.commit()
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").write_bytes(Path(f"{other}{suffix}").read_bytes())
    writer.close()
    assert Path(f"{db_path}-wal").stat().st_size > 0

    report = restore(target, archive, now=clock.now())
    assert report.ok, report.lines
    assert "removed stale cact.sqlite3-wal" in report.lines
    assert "removed stale cact.sqlite3-shm" in report.lines
    check = sqlite3.connect(db_path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()
    restored = Database(target.database_url)
    try:
        assert answers(restored) == before
    finally:
        restored.dispose()


def _rewrite(archive: Path, out: Path, *, manifest_change=None, member_change=None) -> Path:
    """A copy of ``archive`` with its manifest or database member altered."""
    with tarfile.open(archive) as tar, tarfile.open(out, "w:gz") as new:
        for info in tar.getmembers():
            data = tar.extractfile(info).read()
            if info.name == "manifest.json" and manifest_change:
                doc = json.loads(data)
                manifest_change(doc)
                data = json.dumps(doc).encode()
            elif info.name not in ("manifest.json", "secret_key") and member_change:
                data = member_change(data)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_tampered_archive_is_detected(backend, app, database, settings, clock, tmp_path):
    seed(app, database, settings, clock, takers=1)
    archive = backup.create_backup(settings, tmp_path / "out", now=clock.now()).path

    def one_answer_more(doc):
        doc["counts"]["answers"] += 1

    lying = _rewrite(archive, tmp_path / "lying.tar.gz", manifest_change=one_answer_more)
    target = target_settings("sqlite", tmp_path / "a")
    report = restore(target, lying, now=clock.now())
    assert not report.ok
    assert any(line.startswith("answers:") and "DIFFERS" in line for line in report.lines)

    damaged = _rewrite(archive, tmp_path / "damaged.tar.gz",
                       member_change=lambda data: data[:-4096] + b"\0" * 4096)
    target = target_settings("sqlite", tmp_path / "b")
    with pytest.raises(BackupError, match="SHA-256"):
        restore(target, damaged, now=clock.now())
    assert not (target.data_dir / "cact.sqlite3").exists()

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(BackupError, match="not a CACT backup archive"):
        restore(target, junk, now=clock.now())


def cact(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_backup_and_restore(backend, app, database, settings, clock, tmp_path):
    """The commands as an operator runs them: exit codes, messages, the audit event and the
    "last_backup" row; the backup's own audit row is not in (and does not contradict) the
    manifest."""
    seed(app, database, settings, clock, takers=2)
    with database.transaction(write=False) as db:
        audit_rows = len(db.scalars(select(AuditEvent.id)).all())
    env = {**os.environ, "CACT_DATA_DIR": str(settings.data_dir),
           "CACT_DATABASE_URL": database.url, "CACT_SECRET_KEY": settings.secret_key}
    env.pop("CACT_CONFIG", None)
    made = cact(env, "backup", "--out", str(tmp_path / "out"))
    assert made.returncode == 0, made.stderr
    assert "backup written" in made.stdout and "keep this archive like a key" in made.stdout
    archive = next((tmp_path / "out").glob("cact-backup-*.tar.gz"))
    manifest = read_manifest(archive)
    assert manifest["counts"]["audit_events"] == audit_rows
    with database.transaction(write=False) as db:
        event = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        last = backup.last_backup(db)
    assert (event.actor, event.action, event.target) == ("cli", "backup.create", str(archive))
    assert last["path"] == str(archive) and last["counts"] == manifest["counts"]

    fresh = {**env, "CACT_DATA_DIR": str(tmp_path / "fresh"), "CACT_DATABASE_URL": ""}
    fresh.pop("CACT_SECRET_KEY")
    done = cact(fresh, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert "restore complete and verified" in done.stdout
    assert f"audit head: {manifest['audit_head']} = {manifest['audit_head']} ok" in done.stdout
    again = cact(fresh, "restore", str(archive))
    assert again.returncode == 1
    assert "restore refused" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    # The restored data directory serves commands with its restored key.
    verified = cact(fresh, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def auto_settings(settings: Settings, tmp_path: Path, **changes) -> Settings:
    values = {"backup_interval_min": 1, "backup_dir": tmp_path / "usb", "backup_keep": 2,
              **changes}
    return settings.model_copy(update=values)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_automatic_backups_keep_the_newest_and_show_their_age(backend, app, database, settings,
                                                              clock, tmp_path):
    auto = auto_settings(settings, tmp_path)
    # Off without an interval or a folder; nothing to do while no session is open.
    assert backup.auto_backup_once(database, settings, now=clock.now()) is None
    with database.transaction() as db:
        make_open_session(db, clock, secret=settings.secret_key, participants=1)
        for session in db.scalars(select(TestSession)):
            session.state = SessionState.closed
    assert backup.auto_backup_once(database, auto, now=clock.now()) is None
    assert not (tmp_path / "usb").exists() or not list((tmp_path / "usb").glob("cact-*"))
    with database.transaction() as db:
        for session in db.scalars(select(TestSession)):
            session.state = SessionState.open

    made = []
    for _ in range(4):
        result = backup.auto_backup_once(database, auto, now=clock.now())
        assert result is not None
        made.append(result.path)
        # Not due again within the interval (another worker, or the next loop turn).
        assert backup.auto_backup_once(database, auto, now=clock.advance(20)) is None
        clock.advance(41)
    kept = sorted(p.name for p in (tmp_path / "usb").glob("cact-backup-*.tar.gz"))
    assert kept == sorted(p.name for p in made[-2:])

    with database.transaction(write=False) as db:
        last = backup.last_backup(db)
        lines = backup.alerts(db, settings=auto, now=clock.now())
        actors = [e.actor for e in db.scalars(select(AuditEvent).where(
            AuditEvent.action == "backup.create"))]
    assert last["path"] == str(made[-1]) and actors == ["server"] * 4
    assert [(a.level, a.code) for a in lines] == [("info", "backup_age")]
    assert lines[0].text_id == f"Cadangan terakhir: 1 menit lalu ({made[-1]})"
    assert lines[0].text_en == f"Last backup: 1 minute ago ({made[-1]})"

    # Another process holds the lock: this one skips the round.
    (tmp_path / "usb").mkdir(exist_ok=True)
    fd = os.open(tmp_path / "usb" / backup.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert backup.auto_backup_once(database, auto, now=clock.advance(60)) is None
    finally:
        os.close(fd)

    # Late: nothing for more than two intervals while the session is open.
    with database.transaction(write=False) as db:
        late = backup.alerts(db, settings=auto, now=clock.advance(120))
    assert [a.code for a in late] == ["backup_age", "backup_late"]
    assert late[1].level == "warning" and "2 menit" in late[1].text_id

    # A failing target (the USB stick is gone and a file sits at its path): recorded, shown.
    broken = auto_settings(settings, tmp_path, backup_dir=tmp_path / "not-a-dir")
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(OSError):
        backup.auto_backup_once(database, broken, now=clock.now())
    with database.transaction(write=False) as db:
        error = get_value(db, backup.LAST_BACKUP_ERROR)
        failed = backup.alerts(db, settings=broken, now=clock.now())
    assert "not-a-dir" in error["error"]
    assert [(a.level, a.code) for a in failed] == [("info", "backup_age"),
                                                   ("warning", "backup_failed")]
    assert "Cadangan otomatis gagal" in failed[1].text_id and "not-a-dir" in failed[1].text_en
