"""Making backup archives (format: app/ops/archive.py), by hand and automatically, and what
staff see of them.

:func:`create_backup` writes one archive while the exam runs; :func:`record_backup` audits it and
remembers it as ServerState "last_backup". Automatic backups (:func:`auto_backup_loop`) run
every ``backup_interval_min`` minutes while a session is open or paused, into ``backup_dir``,
keeping the newest ``backup_keep`` archives; :func:`alerts` warns when they fail or fall behind.
Restoring an archive is app/ops/restore.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import __version__, audit
from app.ops.archive import (
    FORMAT,
    MANIFEST,
    PG_MEMBER,
    PREFIX,
    SECRET_MEMBER,
    SQLITE_MEMBER,
    SUFFIX,
    BackupError,
    fsync_dir,
    libpq,
    run_pg_tool,
    sha256_file,
    snapshot_facts,
    sqlite_path,
    stamp,
)
from app.ops.keycheck import fingerprint
from app.ops.state import Alert, get_value, set_value
from app.sessions.models import SessionState, TestSession
from app.settings import Settings, read_secret

logger = logging.getLogger("cact.backup")

LAST_BACKUP = "last_backup"
LAST_BACKUP_ERROR = "last_backup_error"
LOCK_NAME = ".cact-backup.lock"
# How often each worker's loop looks whether a backup is due (the interval itself is minutes).
LOOP_CHECK_S = 20.0
FIRST_CHECK_S = 3.0


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float
    bytes: int


# -- writing an archive -------------------------------------------------------------------------


def _secret_for_archive(settings: Settings) -> tuple[str, str]:
    """(key, where it came from); refuses when there is no key to put in the archive."""
    if settings.secret_key:
        return settings.secret_key, "CACT_SECRET_KEY"
    value = read_secret(settings.secret_file)
    if value is None:
        raise BackupError(
            f"no secret key to back up: {settings.secret_file} does not exist and "
            "CACT_SECRET_KEY is not set. A database without its key cannot check any "
            "participant token; run the command with the settings the server uses "
            "(`cact config show`).")
    return value, "file"


def _snapshot_sqlite(settings: Settings, work: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the live SQLite file with the online backup API and read the facts from the copy.

    pages=-1 copies everything in one step inside one read transaction: in WAL mode readers
    never block writers, so takers keep saving while it runs (a stepped copy would restart
    after every write of another process and might never finish during an exam)."""
    source_path = sqlite_path(settings.database_url)
    if not source_path.exists():
        raise BackupError(f"no database at {source_path}: nothing to back up "
                          "(check CACT_DATA_DIR / CACT_DATABASE_URL)")
    copy = work / SQLITE_MEMBER
    # Read-only: a backup run as another user (root) must not create -wal/-shm files there.
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target, pages=-1)
        # The copy is a self-contained file: no WAL beside it when it is restored.
        target.execute("PRAGMA journal_mode=DELETE")
        problem = target.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"the snapshot of {source_path} is damaged ({problem}); "
                              "the live database needs attention before it can be backed up")
    finally:
        target.close()
        source.close()
    engine = create_engine(f"sqlite:///{copy}")
    try:
        with Session(engine) as db:
            facts = snapshot_facts(db)
    finally:
        engine.dispose()
    return copy, facts


def _snapshot_postgresql(settings: Settings, work: Path) -> tuple[Path, dict[str, Any]]:
    """Count in a REPEATABLE READ transaction, export its snapshot and let pg_dump dump that
    very snapshot while the transaction stays open: the manifest describes the dump exactly."""
    dump = work / PG_MEMBER
    libpq_url, env = libpq(settings.database_url)
    engine = create_engine(settings.database_url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn, conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            facts = snapshot_facts(Session(bind=conn))
            run_pg_tool(["pg_dump", "-Fc", "--no-owner", "--no-privileges",
                         f"--snapshot={snapshot}", "-f", str(dump), "-d", libpq_url],
                        env, "dump the database")
    finally:
        engine.dispose()
    return dump, facts


def _archive_name(out_dir: Path, now: datetime) -> Path:
    name = f"{PREFIX}{stamp(now)}"
    path = out_dir / f"{name}{SUFFIX}"
    n = 1
    while path.exists():  # two backups within one second: never overwrite one
        n += 1
        path = out_dir / f"{name}.{n}{SUFFIX}"
    return path


def create_backup(settings: Settings, out_dir: Path, *, now: datetime | None = None
                  ) -> BackupResult:
    """Write one archive into ``out_dir`` (safe while an exam runs) and return it with its
    manifest. The archive appears under its final name only when complete (temp file, fsync,
    rename), with mode 0600. Records nothing in the database: see :func:`record_backup`."""
    started = time.monotonic()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {out_dir}: {exc.strerror}; "
                          "choose another with --out or CACT_BACKUP_DIR") from None
    if not os.access(out_dir, os.W_OK):
        raise BackupError(f"cannot write to the backup folder {out_dir} as this user; "
                          "choose another with --out or CACT_BACKUP_DIR")
    secret, secret_source = _secret_for_archive(settings)
    work = Path(tempfile.mkdtemp(prefix=".cact-backup-", dir=out_dir))
    try:
        if settings.is_sqlite:
            member, facts = _snapshot_sqlite(settings, work)
            backend = "sqlite"
        else:
            member, facts = _snapshot_postgresql(settings, work)
            backend = "postgresql"
        manifest = {
            "format": FORMAT,
            "app": "cact",
            "version": __version__,
            "created_at": now.isoformat(),
            "host": socket.gethostname(),
            "backend": backend,
            "schema_revision": facts["schema_revision"],
            "counts": facts["counts"],
            "audit_head": facts["audit_head"],
            "database_member": member.name,
            "database_sha256": sha256_file(member),
            "database_bytes": member.stat().st_size,
            "secret_source": secret_source,
            "secret_fingerprint": fingerprint(secret),
        }
        final = _archive_name(out_dir, now)
        partial = work / (final.name + ".part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n", now)
                _add_bytes(tar, SECRET_MEMBER, secret.encode() + b"\n", now)
                info = tar.gettarinfo(str(member), arcname=member.name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with member.open("rb") as handle:
                    tar.addfile(info, handle)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, final)
        fsync_dir(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = final.stat().st_size
    return BackupResult(final, manifest, time.monotonic() - started, size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, now: datetime) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(now.timestamp())
    tar.addfile(info, io.BytesIO(data))


def record_backup(database, result: BackupResult, *, actor: str, now: datetime) -> None:
    """Audit the backup and remember it as ServerState "last_backup" (the console shows its
    age). Written after the snapshot, so the manifest is not touched by its own audit row."""
    manifest = result.manifest
    with database.transaction() as db:
        audit.record(db, actor=actor, action="backup.create", now=now, target=str(result.path),
                     data={"bytes": result.bytes, "counts": manifest["counts"],
                           "audit_head": manifest["audit_head"],
                           "seconds": round(result.seconds, 3)})
        set_value(db, LAST_BACKUP, {
            "at": now.astimezone(UTC).isoformat(), "path": str(result.path),
            "bytes": result.bytes, "counts": manifest["counts"],
            "audit_head": manifest["audit_head"], "seconds": round(result.seconds, 3),
            "actor": actor}, now=now)


def prune(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` archives in ``backup_dir`` (only files named like
    ours); returns what was deleted."""
    archives = sorted(
        (p for p in Path(backup_dir).glob(f"{PREFIX}*{SUFFIX}") if p.is_file()),
        key=lambda p: (p.stat().st_mtime_ns, p.name),
    )
    doomed = archives[:-keep] if keep > 0 else archives
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


# -- automatic backups --------------------------------------------------------------------------


def _parse_at(value: Any) -> datetime | None:
    if not isinstance(value, dict) or not isinstance(value.get("at"), str):
        return None
    try:
        at = datetime.fromisoformat(value["at"])
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def auto_enabled(settings: Settings) -> bool:
    """Automatic backups are on: an interval and a folder are both set."""
    return settings.backup_interval_min > 0 and settings.backup_dir is not None


def _session_running(db: Session) -> bool:
    running = db.scalar(select(func.count()).select_from(TestSession).where(
        TestSession.state.in_([SessionState.open, SessionState.paused])))
    return bool(running)


@contextlib.contextmanager
def _only_one(folder: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock on a file in ``folder``: True for the one process that
    got it (the other workers skip this round)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def auto_backup_once(database, settings: Settings, *, now: datetime) -> BackupResult | None:
    """One round of the automatic backup: when it is on, a session is open or paused and the
    last backup (or failed try) is at least one interval old, write an archive into
    ``backup_dir``, keep the newest ``backup_keep`` and record it. Only one process per backup
    folder does it (file lock); a failure is recorded as "last_backup_error" and re-raised."""
    if not auto_enabled(settings):
        return None
    if settings.backup_dir is None:  # auto_enabled() says it is set
        raise RuntimeError("automatic backups without a backup_dir")
    interval = settings.backup_interval_min * 60

    def due() -> bool:
        with database.transaction(write=False) as db:
            if not _session_running(db):
                return False
            tries = [_parse_at(get_value(db, LAST_BACKUP)),
                     _parse_at(get_value(db, LAST_BACKUP_ERROR))]
        latest = max((t for t in tries if t is not None), default=None)
        return latest is None or (now - latest).total_seconds() >= interval - 1

    if not due():
        return None
    folder = Path(settings.backup_dir)
    try:
        with _only_one(folder) as got:
            if not got or not due():  # another worker is at it, or has just done it
                return None
            result = create_backup(settings, folder, now=now)
            removed = prune(folder, settings.backup_keep)
            record_backup(database, result, actor="server", now=now)
    except OSError as exc:
        _record_error(database, f"cannot use the backup folder {folder}: "
                      f"{exc.strerror or exc}", now)
        raise
    except Exception as exc:
        _record_error(database, str(exc), now)
        raise
    logger.info("automatic backup %s (%d bytes, %.2f s), %d old archives removed",
                result.path, result.bytes, result.seconds, len(removed))
    return result


def _record_error(database, message: str, now: datetime) -> None:
    with contextlib.suppress(Exception), database.transaction() as db:
        set_value(db, LAST_BACKUP_ERROR, {"at": now.astimezone(UTC).isoformat(),
                                          "error": message[:500]}, now=now)


async def auto_backup_loop(app: FastAPI) -> None:
    """Every worker runs this; it does nothing unless CACT_BACKUP_INTERVAL_MIN and
    CACT_BACKUP_DIR are set. The backup itself runs in a worker thread (never on the event
    loop); the file lock and the "last_backup" row make one backup per interval in all."""
    settings: Settings = app.state.settings
    if not auto_enabled(settings):
        return
    check = min(LOOP_CHECK_S, settings.backup_interval_min * 60 / 4)
    await asyncio.sleep(FIRST_CHECK_S)  # soon after start: the first backup of an open session
    while True:
        try:
            await run_in_threadpool(auto_backup_once, app.state.db, settings,
                                    now=app.state.clock.now())
        except asyncio.CancelledError:
            raise
        except Exception:  # recorded as last_backup_error and shown to staff; keep trying
            logger.exception("automatic backup failed")
        await asyncio.sleep(check)


# -- what staff see -----------------------------------------------------------------------------


def last_backup(db: Session) -> dict[str, Any] | None:
    """ServerState "last_backup": {"at", "path", "bytes", "counts", "audit_head", ...}."""
    value = get_value(db, LAST_BACKUP)
    return value if isinstance(value, dict) else None


def _age_text(seconds: float) -> tuple[str, str]:
    minutes = int(max(0, seconds) // 60)
    if minutes < 1:
        return "baru saja", "just now"
    if minutes < 120:
        return f"{minutes} menit lalu", f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    return f"{hours} jam lalu", f"{hours} hours ago"


def alerts(db: Session, *, settings: Settings, now: datetime) -> list[Alert]:
    """The backup lines for the console and dashboard: the age of the last backup (info), and
    a warning when automatic backups are on, a session is open and the last one is older than
    two intervals, or the last try failed (saying why)."""
    out: list[Alert] = []
    last = last_backup(db)
    last_at = _parse_at(last)
    error = get_value(db, LAST_BACKUP_ERROR)
    error_at = _parse_at(error)
    if last is not None and last_at is not None:
        age_id, age_en = _age_text((now - last_at).total_seconds())
        out.append(Alert("info", "backup_age", f"Cadangan terakhir: {age_id} ({last['path']})",
                         f"Last backup: {age_en} ({last['path']})"))
    if not auto_enabled(settings):
        return out
    running = _session_running(db)
    if error_at is not None and (last_at is None or error_at > last_at):
        reason = str(error.get("error", ""))
        out.append(Alert("warning", "backup_failed",
                         f"Cadangan otomatis gagal: {reason}. Periksa {settings.backup_dir} "
                         "(disk/USB terpasang dan dapat ditulis) atau jalankan `cact backup`.",
                         f"Automatic backup failed: {reason}. Check {settings.backup_dir} "
                         "(disk/USB mounted and writable) or run `cact backup`."))
    elif running:
        limit = 2 * settings.backup_interval_min * 60
        if last_at is None or (now - last_at).total_seconds() > limit:
            if last_at is None:
                # The first one is due one interval after the session opened: no alarm yet
                # unless the session has been running for two.
                opened = _session_opened_at(db)
                if opened is None or (now - opened).total_seconds() <= limit:
                    return out
            out.append(Alert("warning", "backup_late",
                             "Cadangan otomatis terlambat: belum ada cadangan dalam "
                             f"{2 * settings.backup_interval_min} menit terakhir ke "
                             f"{settings.backup_dir}. Periksa log server atau jalankan "
                             "`cact backup`.",
                             "Automatic backup late: none in the last "
                             f"{2 * settings.backup_interval_min} minutes to "
                             f"{settings.backup_dir}. Check the server log or run "
                             "`cact backup`."))
    return out


def _session_opened_at(db: Session) -> datetime | None:
    at = db.scalar(select(func.min(TestSession.starts_at)).where(
        TestSession.state.in_([SessionState.open, SessionState.paused])))
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
