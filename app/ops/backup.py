"""Backups and restores: one archive holds a consistent snapshot, the secret key and a manifest.

An archive ``cact-backup-<UTC time>.tar.gz`` (mode 0600: it holds the key) contains

- ``manifest.json``: format, CACT version, backend, schema revision, creation time, the counts
  of answers, answer events, attempts and audit rows and the audit head hash, all computed on
  the snapshot itself (never on the live database, which moves on meanwhile), the SHA-256 of
  the database member and the fingerprint of the key;
- ``secret_key``: the key file's content, or CACT_SECRET_KEY when the key is set that way;
- ``cact.sqlite3`` (SQLite online backup API: one read transaction, which in WAL mode never
  blocks the writers) or ``cact.pgdump`` (``pg_dump -Fc`` of a snapshot exported from the
  REPEATABLE READ transaction that counted the rows).

:func:`restore` puts an archive back into the database and data directory the settings name,
refusing a non-empty target unless forced (the old files are moved aside, never deleted),
removing stale SQLite ``-wal``/``-shm`` files, and then checks the restored counts and audit
head against the manifest.

Automatic backups (:func:`auto_backup_loop`) run every ``backup_interval_min`` minutes while a
session is open or paused, into ``backup_dir``, keeping the newest ``backup_keep`` archives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.ops.state import Alert, get_value, set_value
from app.settings import Settings

logger = logging.getLogger("cact.backup")

FORMAT = 1
PREFIX = "cact-backup-"
SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
SECRET_MEMBER = "secret_key"  # noqa: S105 - the archive member's name, not a secret
SQLITE_MEMBER = "cact.sqlite3"
PG_MEMBER = "cact.pgdump"
LAST_BACKUP = "last_backup"
LAST_BACKUP_ERROR = "last_backup_error"
LOCK_NAME = ".cact-backup.lock"
COUNTED = ("answers", "answer_events", "attempts", "audit_events")
# How often each worker's loop looks whether a backup is due (the interval itself is minutes).
LOOP_CHECK_S = 20.0
FIRST_CHECK_S = 3.0


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says what, where and how to fix."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float
    bytes: int


@dataclass
class RestoreReport:
    ok: bool
    lines: list[str] = field(default_factory=list)
    moved_aside: list[Path] = field(default_factory=list)


# -- what a snapshot holds ----------------------------------------------------------------------


def snapshot_facts(db: Session) -> dict[str, Any]:
    """Counts, audit head hash and schema revision of the database ``db`` sees (call it inside
    the snapshot's transaction, or on the snapshot copy)."""
    from app.audit import GENESIS_HASH, AuditEvent
    from app.delivery.models import Answer, AnswerEvent, Attempt

    counts = {
        "answers": db.scalar(select(func.count()).select_from(Answer)),
        "answer_events": db.scalar(select(func.count()).select_from(AnswerEvent)),
        "attempts": db.scalar(select(func.count()).select_from(Attempt)),
        "audit_events": db.scalar(select(func.count()).select_from(AuditEvent)),
    }
    head = db.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    revision = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {"counts": {k: int(v or 0) for k, v in counts.items()},
            "audit_head": head or GENESIS_HASH, "schema_revision": revision}


def _secret_for_archive(settings: Settings) -> tuple[str, str]:
    """(key, where it came from); refuses when there is no key to put in the archive."""
    from app.settings import read_secret

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


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL as a libpq URL for pg_dump/pg_restore, the password moved into the
    environment (never on a command line that `ps` shows)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupError(f"{args[0]} not found: install the PostgreSQL client "
                          f"(apt install postgresql-client) to {what}")
    done = subprocess.run([tool, *args[1:]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed ({what}), exit {done.returncode}: "
                          f"{done.stderr.strip()[-2000:]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def _snapshot_sqlite(settings: Settings, work: Path) -> tuple[Path, dict[str, Any]]:
    """Copy the live SQLite file with the online backup API and read the facts from the copy.

    pages=-1 copies everything in one step inside one read transaction: in WAL mode readers
    never block writers, so takers keep saving while it runs (a stepped copy would restart
    after every write of another process and might never finish during an exam)."""
    source_path = _sqlite_path(settings.database_url)
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
    libpq_url, env = _libpq(settings.database_url)
    engine = create_engine(settings.database_url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn, conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            facts = snapshot_facts(Session(bind=conn))
            _run(["pg_dump", "-Fc", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                  "-f", str(dump), "-d", libpq_url], env, "dump the database")
    finally:
        engine.dispose()
    return dump, facts


def _archive_name(out_dir: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{PREFIX}{stamp}{SUFFIX}"
    n = 1
    while path.exists():  # two backups within one second: never overwrite one
        n += 1
        path = out_dir / f"{PREFIX}{stamp}.{n}{SUFFIX}"
    return path


def create_backup(settings: Settings, out_dir: Path, *, now: datetime | None = None
                  ) -> BackupResult:
    """Write one archive into ``out_dir`` (safe while an exam runs) and return it with its
    manifest. The archive appears under its final name only when complete (temp file, fsync,
    rename), with mode 0600. Records nothing in the database: see :func:`record_backup`."""
    from app import __version__
    from app.ops.keycheck import fingerprint

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
            "database_sha256": _sha256(member),
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
        _fsync_dir(out_dir)
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
    from app import audit

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


# -- reading an archive -------------------------------------------------------------------------


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of an archive, or BackupError saying why it is not one of ours."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            manifest = json.loads(member.read())
    except FileNotFoundError:
        raise BackupError(f"no such archive: {archive}") from None
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise BackupError(f"{archive} is not a CACT backup archive ({exc}); give the "
                          f"{PREFIX}<time>{SUFFIX} file that `cact backup` wrote") from None
    if manifest.get("app") != "cact" or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: unknown archive format {manifest.get('format')!r} "
                          f"(this CACT reads format {FORMAT})")
    return manifest


def _extract(tar: tarfile.TarFile, name: str, target: Path) -> None:
    source = tar.extractfile(name)
    if source is None:
        raise BackupError(f"the archive has no {name}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


# -- restore ------------------------------------------------------------------------------------


def _heartbeat_age(engine, now: datetime) -> float | None:
    """Seconds since a server wrote its heartbeat into this database, None when never (or no
    server_state table)."""
    from app.ops.models import ServerState

    try:
        with Session(engine) as db:
            row = db.scalar(select(ServerState).where(ServerState.name == "heartbeat"))
    except Exception:  # noqa: BLE001 - no such table, not a database: nothing serves it
        return None
    if row is None:
        return None
    at = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return (now - at).total_seconds()


def _refuse_if_serving(engine, settings: Settings, now: datetime, where: str) -> None:
    age = _heartbeat_age(engine, now)
    if age is not None and age < 3 * settings.heartbeat_interval_s:
        raise BackupError(
            f"a CACT server is serving {where} (its heartbeat is {age:.0f} s old): stop it "
            "first (sudo systemctl stop cact), then restore")


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _restore_sqlite(settings: Settings, tar: tarfile.TarFile, manifest: dict[str, Any], *,
                    force: bool, now: datetime, report: RestoreReport) -> None:
    path = _sqlite_path(settings.database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    companions = [Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")]
    if path.exists():
        engine = create_engine(f"sqlite:///{path}")
        try:
            _refuse_if_serving(engine, settings, now, str(path))
        finally:
            engine.dispose()
        if not force:
            raise BackupError(
                f"the target {path} already exists: restore refuses to overwrite a database. "
                "Restore into an empty data directory (CACT_DATA_DIR), or add --force to move "
                "the current database aside (kept as *.before-restore-<time>)")
        aside = path.with_name(f"{path.name}.before-restore-{_stamp(now)}")
        for old in [path, *companions]:
            if old.exists():
                moved = Path(str(old).replace(str(path), str(aside), 1))
                os.replace(old, moved)
                report.moved_aside.append(moved)
    for stale in companions:  # -wal/-shm of some other database would corrupt the restored one
        if stale.exists():
            stale.unlink()
            report.lines.append(f"removed stale {stale.name}")
    partial = path.with_name(f".{path.name}.restore-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        _extract(tar, SQLITE_MEMBER, partial)
        if _sha256(partial) != manifest.get("database_sha256"):
            raise BackupError("the database in the archive does not match the SHA-256 in its "
                              "manifest: the archive is damaged; use another backup")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _restore_postgresql(settings: Settings, tar: tarfile.TarFile, *, force: bool,
                        now: datetime, work: Path) -> None:
    engine = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    safe = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
        if tables:
            _refuse_if_serving(engine, settings, now, safe)
            if not force:
                raise BackupError(
                    f"the target database {safe} is not empty ({tables} tables): restore "
                    "refuses to overwrite it. Create an empty database (createdb) and point "
                    "CACT_DATABASE_URL at it, or add --force to drop everything in its public "
                    "schema first")
            with engine.connect() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    dump = work / PG_MEMBER
    _extract(tar, PG_MEMBER, dump)
    libpq_url, env = _libpq(settings.database_url)
    _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-d", libpq_url,
          str(dump)], env, "restore the database")


def _write_secret(settings: Settings, secret: str, now: datetime, force: bool,
                  report: RestoreReport) -> None:
    from app.ops.keycheck import fingerprint
    from app.settings import read_secret

    path = settings.secret_file
    if path.exists():
        current = read_secret(path)
        if current is not None and hmac.compare_digest(current, secret):
            return
        if not force:
            raise BackupError(
                f"{path} holds another key (fingerprint "
                f"{fingerprint(current) if current else '?'}); restore refuses to replace it. "
                "Restore into an empty data directory, or add --force (the old key is kept "
                "as secret_key.before-restore-<time>)")
        aside = path.with_name(f"{path.name}.before-restore-{_stamp(now)}")
        os.replace(path, aside)
        report.moved_aside.append(aside)
    partial = path.with_name(f".{path.name}.restore-{os.getpid()}")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    _fsync_dir(path.parent)


def check_against_manifest(database, manifest: dict[str, Any]) -> tuple[bool, list[str]]:
    """Recount the restored database, verify its audit chain and compare both with the
    manifest; one line per fact ("ok" or "BEDA / DIFFERS")."""
    from app import audit

    with database.transaction(write=False) as db:
        facts = snapshot_facts(db)
        chain = audit.verify(db)
    ok, lines = True, []

    def line(name: str, have: Any, want: Any) -> None:
        nonlocal ok
        same = have == want
        ok &= same
        lines.append(f"{name}: {have} {'= ' if same else '!= '}{want} "
                     f"{'ok' if same else 'BEDA / DIFFERS'}")

    line("schema revision", facts["schema_revision"], manifest.get("schema_revision"))
    for name in COUNTED:
        line(name, facts["counts"].get(name), manifest.get("counts", {}).get(name))
    line("audit head", facts["audit_head"], manifest.get("audit_head"))
    if chain.ok:
        lines.append(f"audit chain: {chain.checked} rows intact ok")
        line("audit chain head", chain.head_hash, manifest.get("audit_head"))
    else:
        ok = False
        lines.append(f"audit chain: BROKEN at row {chain.bad_id}: {chain.problem}")
    return ok, lines


def _refuse_unknown_revision(settings: Settings, manifest: dict[str, Any], archive: Path
                             ) -> None:
    """A backup made by a newer CACT (a schema revision this code does not know) would be
    refused by every command after the restore: refuse it before changing anything."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from app.db import alembic_config

    revision = manifest.get("schema_revision")
    if revision is None:
        return
    script = ScriptDirectory.from_config(alembic_config(settings.database_url))
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(
            f"{archive} was made by a newer CACT (schema revision {revision}, CACT "
            f"{manifest.get('version')}): install that version to restore it")


def restore(settings: Settings, archive: Path, *, force: bool = False,
            now: datetime | None = None) -> RestoreReport:
    """Restore ``archive`` into the database and data directory of ``settings``, then compare
    the result with the manifest. Raises BackupError (nothing changed) when the restore is
    refused; returns a report whose ``ok`` is False when the check found a difference."""
    from app.db import Database
    from app.ops.keycheck import fingerprint

    now = (now or datetime.now(UTC)).astimezone(UTC)
    archive = Path(archive)
    manifest = read_manifest(archive)
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest.get("backend") != backend:
        raise BackupError(
            f"{archive} is a {manifest.get('backend')} backup and the target is {backend} "
            f"({'CACT_DATA_DIR' if settings.is_sqlite else 'CACT_DATABASE_URL'}): a restore "
            "across backends is not supported. Set CACT_DATABASE_URL to the kind of database "
            "the backup came from")
    _refuse_unknown_revision(settings, manifest, archive)
    report = RestoreReport(ok=False)
    with tarfile.open(archive, "r:*") as tar:
        key_member = tar.extractfile(SECRET_MEMBER)
        if key_member is None:
            raise BackupError(f"{archive} holds no secret key: it cannot be restored")
        secret = key_member.read().decode().strip()
        if fingerprint(secret) != manifest.get("secret_fingerprint"):
            raise BackupError(f"the key in {archive} does not match its manifest: the "
                              "archive is damaged; use another backup")
        if settings.secret_key and not hmac.compare_digest(settings.secret_key, secret):
            raise BackupError(
                f"CACT_SECRET_KEY (fingerprint {fingerprint(settings.secret_key)}) is not the "
                f"key of this backup (fingerprint {manifest['secret_fingerprint']}): set "
                "CACT_SECRET_KEY to the backup's key, or unset it to use the key file the "
                "archive holds")
        if not settings.secret_key and settings.secret_file.exists() and not force:
            from app.settings import read_secret

            current = read_secret(settings.secret_file)
            if current is None or not hmac.compare_digest(current, secret):
                raise BackupError(
                    f"{settings.secret_file} holds another key; restore refuses to replace it. "
                    "Restore into an empty data directory, or add --force (the old key is "
                    "kept as secret_key.before-restore-<time>)")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.is_sqlite:
            _restore_sqlite(settings, tar, manifest, force=force, now=now, report=report)
        else:
            with tempfile.TemporaryDirectory(prefix=".cact-restore-",
                                             dir=settings.data_dir) as work:
                _restore_postgresql(settings, tar, force=force, now=now, work=Path(work))
    if not settings.secret_key:
        _write_secret(settings, secret, now, force, report)
    database = Database(settings.database_url)
    try:
        ok, lines = check_against_manifest(database, manifest)
        report.lines.extend(lines)
        from app.ops.keycheck import problem

        with database.transaction(write=False) as db:
            key_problem = problem(db, secret=secret)
        if key_problem:
            ok = False
            report.lines.append(f"secret key: {key_problem}")
        else:
            report.lines.append(f"secret key: fingerprint {fingerprint(secret)} ok")
        report.ok = ok
        from app import audit

        with database.transaction() as db:
            audit.record(db, actor="cli", action="backup.restore", now=now,
                         target=str(archive), data={"ok": ok, "created_at":
                                                    manifest.get("created_at"),
                                                    "counts": manifest.get("counts"),
                                                    "audit_head": manifest.get("audit_head")})
    finally:
        database.dispose()
    return report


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
    from app.sessions.models import SessionState, TestSession

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
    from app.sessions.models import SessionState, TestSession

    at = db.scalar(select(func.min(TestSession.starts_at)).where(
        TestSession.state.in_([SessionState.open, SessionState.paused])))
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
