"""`cact backup` and `cact restore` (the logic is in app/ops/backup.py and app/ops/restore.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, ready_database, warn_if_root
from app.settings import get_settings


def backup_command(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the archive (default CACT_BACKUP_DIR, else DATA_DIR/backups)",
    )] = None,
) -> None:
    """Write one backup archive: a consistent snapshot of the database, the secret key and a
    manifest. Safe while an exam runs. Keep the archive like the key: it opens every token."""
    from app.ops import backup
    from app.ops.archive import BackupError

    settings = get_settings()
    out_dir = out or settings.backup_dir or settings.data_dir / "backups"
    database = ready_database()  # the schema is the code's and the key is the database's
    try:
        now = datetime.now(UTC)
        try:
            result = backup.create_backup(settings, Path(out_dir), now=now)
        except BackupError as exc:
            raise fail(f"Cadangan gagal / backup failed: {exc}") from None
        backup.record_backup(database, result, actor="cli", now=now)
    finally:
        database.dispose()
    manifest = result.manifest
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    typer.echo(f"Cadangan dibuat / backup written: {result.path}")
    typer.echo(f"  {result.bytes} bytes in {result.seconds:.2f} s; {manifest['backend']}, "
               f"schema {manifest['schema_revision']}")
    typer.echo(f"  {counts}")
    typer.echo(f"  audit head {manifest['audit_head']}")
    typer.echo("  Simpan arsip ini seperti kunci / keep this archive like a key: it holds the "
               "secret key (mode 0600).")
    if out is None and settings.backup_dir is None:
        typer.secho("  Peringatan / warning: the archive is on the same disk as the database; "
                    "copy it to another disk or USB stick (or set CACT_BACKUP_DIR).",
                    fg=typer.colors.YELLOW, err=True)


def restore_command(
    archive: Annotated[Path, typer.Argument(help="A cact-backup-<time>.tar.gz archive")],
    force: Annotated[bool, typer.Option(
        "--force", help="Restore over a non-empty target (the old SQLite file and key are "
        "moved aside; PostgreSQL's public schema is dropped)")] = False,
) -> None:
    """Restore an archive into the data directory / database of the current settings (an
    empty one unless --force), then check the counts and audit head against its manifest."""
    from app.ops.archive import BackupError
    from app.ops.restore import restore

    settings = get_settings()
    warn_if_root(settings)  # restored files owned by root would lock the service out
    try:
        report = restore(settings, archive, force=force)
    except BackupError as exc:
        raise fail(f"Pemulihan ditolak / restore refused: {exc}") from None
    for path in report.moved_aside:
        typer.echo(f"moved aside: {path}")
    for line in report.lines:
        typer.echo(line)
    if not report.ok:
        raise fail("Pemulihan TIDAK cocok dengan manifest / the restored database does NOT "
                   "match the backup's manifest (see the lines above); do not serve it: use "
                   "another archive.")
    typer.echo(f"Pemulihan selesai dan cocok / restore complete and verified: "
               f"{settings.database_url if not settings.is_sqlite else settings.data_dir}")
