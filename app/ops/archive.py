"""The backup archive's format, shared by making one (app/ops/backup.py) and restoring one
(app/ops/restore.py).

An archive ``cact-backup-<UTC time>.tar.gz`` (mode 0600: it holds the key) contains

- ``manifest.json``: format, CACT version, backend, schema revision, creation time, the counts
  of answers, answer events, attempts and audit rows and the audit head hash, all computed on
  the snapshot itself (never on the live database, which moves on meanwhile), the SHA-256 of
  the database member and the fingerprint of the key;
- ``secret_key``: the key file's content, or CACT_SECRET_KEY when the key is set that way;
- ``cact.sqlite3`` (SQLite online backup API: one read transaction, which in WAL mode never
  blocks the writers) or ``cact.pgdump`` (``pg_dump -Fc`` of a snapshot exported from the
  REPEATABLE READ transaction that counted the rows).

Here: the member names, :func:`snapshot_facts` (what the manifest says of a database, and what a
restore checks again), :func:`read_manifest`, and the file and PostgreSQL client helpers both
sides use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.audit import GENESIS_HASH, AuditEvent
from app.delivery.models import Answer, AnswerEvent, Attempt

FORMAT = 1
PREFIX = "cact-backup-"
SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
SECRET_MEMBER = "secret_key"  # noqa: S105 - the archive member's name, not a secret
SQLITE_MEMBER = "cact.sqlite3"
PG_MEMBER = "cact.pgdump"
COUNTED = ("answers", "answer_events", "attempts", "audit_events")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says what, where and how to fix."""


def snapshot_facts(db: Session) -> dict[str, Any]:
    """Counts, audit head hash and schema revision of the database ``db`` sees (call it inside
    the snapshot's transaction, or on the snapshot copy)."""
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


# -- files and the PostgreSQL client tools ------------------------------------------------------


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL as a libpq URL for pg_dump/pg_restore, the password moved into the
    environment (never on a command line that `ps` shows)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def run_pg_tool(args: list[str], env: dict[str, str], what: str) -> None:
    """Run pg_dump or pg_restore; BackupError with its stderr when it is missing or fails."""
    tool = shutil.which(args[0])
    if tool is None:
        raise BackupError(f"{args[0]} not found: install the PostgreSQL client "
                          f"(apt install postgresql-client) to {what}")
    done = subprocess.run([tool, *args[1:]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed ({what}), exit {done.returncode}: "
                          f"{done.stderr.strip()[-2000:]}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def stamp(now: datetime) -> str:
    """``now`` as the UTC time in archive and moved-aside names: 20250131T081500Z."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
