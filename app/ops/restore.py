"""Restoring a backup archive (app/ops/archive.py) and checking the result.

:func:`restore` puts an archive back into the database and data directory the settings name,
refusing a non-empty target unless forced (the old files are moved aside, never deleted),
removing stale SQLite ``-wal``/``-shm`` files, and then checks the restored counts and audit
head against the manifest (:func:`check_against_manifest`).
"""

from __future__ import annotations

import hmac
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import audit
from app.db import Database, alembic_config
from app.ops.archive import (
    COUNTED,
    PG_MEMBER,
    SECRET_MEMBER,
    SQLITE_MEMBER,
    BackupError,
    fsync_dir,
    libpq,
    read_manifest,
    run_pg_tool,
    sha256_file,
    snapshot_facts,
    sqlite_path,
    stamp,
)
from app.ops.keycheck import fingerprint, problem
from app.ops.models import ServerState
from app.settings import Settings, read_secret


@dataclass
class RestoreReport:
    ok: bool
    lines: list[str] = field(default_factory=list)
    moved_aside: list[Path] = field(default_factory=list)


def restore(settings: Settings, archive: Path, *, force: bool = False,
            now: datetime | None = None) -> RestoreReport:
    """Restore ``archive`` into the database and data directory of ``settings``, then compare
    the result with the manifest. Raises BackupError (nothing changed) when the restore is
    refused; returns a report whose ``ok`` is False when the check found a difference."""
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
        with database.transaction(write=False) as db:
            key_problem = problem(db, secret=secret)
        if key_problem:
            ok = False
            report.lines.append(f"secret key: {key_problem}")
        else:
            report.lines.append(f"secret key: fingerprint {fingerprint(secret)} ok")
        report.ok = ok
        with database.transaction() as db:
            audit.record(db, actor="cli", action="backup.restore", now=now,
                         target=str(archive), data={"ok": ok, "created_at":
                                                    manifest.get("created_at"),
                                                    "counts": manifest.get("counts"),
                                                    "audit_head": manifest.get("audit_head")})
    finally:
        database.dispose()
    return report


def check_against_manifest(database, manifest: dict[str, Any]) -> tuple[bool, list[str]]:
    """Recount the restored database, verify its audit chain and compare both with the
    manifest; one line per fact ("ok" or "BEDA / DIFFERS")."""
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


# -- refusals before anything changes -----------------------------------------------------------


def _refuse_unknown_revision(settings: Settings, manifest: dict[str, Any], archive: Path
                             ) -> None:
    """A backup made by a newer CACT (a schema revision this code does not know) would be
    refused by every command after the restore: refuse it before changing anything."""
    # Alembic is loaded for this check only, as app.db does: server workers never need it.
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

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


def _heartbeat_age(engine, now: datetime) -> float | None:
    """Seconds since a server wrote its heartbeat into this database, None when never (or no
    server_state table)."""
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


# -- putting the files back ---------------------------------------------------------------------


def _extract(tar: tarfile.TarFile, name: str, target: Path) -> None:
    source = tar.extractfile(name)
    if source is None:
        raise BackupError(f"the archive has no {name}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _restore_sqlite(settings: Settings, tar: tarfile.TarFile, manifest: dict[str, Any], *,
                    force: bool, now: datetime, report: RestoreReport) -> None:
    path = sqlite_path(settings.database_url)
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
        aside = path.with_name(f"{path.name}.before-restore-{stamp(now)}")
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
        if sha256_file(partial) != manifest.get("database_sha256"):
            raise BackupError("the database in the archive does not match the SHA-256 in its "
                              "manifest: the archive is damaged; use another backup")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(path.parent)


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
    libpq_url, env = libpq(settings.database_url)
    run_pg_tool(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-d",
                 libpq_url, str(dump)], env, "restore the database")


def _write_secret(settings: Settings, secret: str, now: datetime, force: bool,
                  report: RestoreReport) -> None:
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
        aside = path.with_name(f"{path.name}.before-restore-{stamp(now)}")
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
    fsync_dir(path.parent)
