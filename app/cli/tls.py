"""`cact tls init`: the lab CA and the server certificate nginx serves (app/ops/tls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, now
from app.ops import tls

tls_cli = typer.Typer(help="TLS on the lab LAN: a local CA and the server certificate for nginx.",
                      no_args_is_help=True)


def _audit(result: tls.TlsResult) -> str:
    """Record the new certificate in the audit log when this machine's database is set up;
    the command itself needs no database (it may run before `cact db upgrade`), so a missing
    one only costs the record, and the output says so."""
    import os

    from sqlalchemy.engine import make_url

    from app import audit
    from app.db import Database, schema_is_current
    from app.settings import get_settings

    try:
        settings = get_settings()
        if settings.is_sqlite:
            # This command runs as root; opening the service's SQLite file as root could leave
            # root-owned -wal/-shm files the service can no longer write, or create a stray
            # database. Only the file's owner writes the record.
            path = make_url(settings.database_url).database or ""
            if not os.path.exists(path):
                return f"not recorded in the audit log: no database at {path}"
            if os.stat(path).st_uid != os.geteuid():
                return ("not recorded in the audit log: the database belongs to another user "
                        "(the record is skipped rather than touch its files as this user)")
        # Not common.open_database: this command runs as root by design, so its warning about
        # root-owned data files does not apply to a record that only reaches the database.
        database = Database.for_settings(settings)
        try:
            if not schema_is_current(database.engine)[0]:
                return "not recorded in the audit log: the database schema is not current"
            with database.transaction() as db:
                audit.record(db, actor="cli", action="tls.init", now=now(),
                             target=str(result.directory),
                             data={"hosts": result.hosts, "ips": result.ips,
                                   "ca_created": result.ca_created,
                                   "ca_fingerprint": result.ca_fingerprint,
                                   "not_after": result.not_after.isoformat()})
        finally:
            database.dispose()
    except Exception as exc:  # noqa: BLE001 - the certificate is written; say why no record
        return f"not recorded in the audit log ({type(exc).__name__}: {exc})"
    return "recorded in the audit log (tls.init)"


@tls_cli.command("init")
def tls_init(
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="DNS name the lab PCs use for the server (repeatable), e.g. cact.lab",
    )] = None,
    ip: Annotated[list[str] | None, typer.Option(
        "--ip", help="IP address the lab PCs use for the server (repeatable)")] = None,
    directory: Annotated[Path, typer.Option(
        "--dir", help="Folder for the CA and certificate (the nginx site reads /etc/cact/tls)",
    )] = tls.DEFAULT_DIR,
    days: Annotated[int, typer.Option(
        help=f"Validity of the server certificate in days (at most {tls.MAX_SERVER_DAYS})",
    )] = tls.MAX_SERVER_DAYS,
    force: Annotated[bool, typer.Option(
        help="Make a new CA even if one exists (every lab PC must then trust it again)",
    )] = False,
) -> None:
    """Make a local CA (once) and a new server certificate signed by it, in the folder the
    nginx site expects; print how to trust the CA on the lab PCs."""
    try:
        result = tls.init(directory, hosts=host or [], ips=ip or [], days=days, force=force)
    except tls.TlsError as exc:
        raise fail(f"cact tls init: {exc}", code=2) from None
    if result.ca_created:
        typer.echo(f"CA baru / new CA: {result.ca_cert} (berlaku sampai / valid until "
                   f"{result.ca_not_after:%Y-%m-%d})")
    else:
        typer.echo(f"CA yang ada dipakai lagi / existing CA reused: {result.ca_cert} (PC lab "
                   "yang sudah mempercayainya tidak perlu diubah / PCs that trust it need "
                   "nothing new)")
    names = ", ".join(result.hosts + result.ips)
    typer.echo(f"Sertifikat server / server certificate: {result.server_cert} + "
               f"{result.server_key} for {names}, berlaku sampai / valid until "
               f"{result.not_after:%Y-%m-%d}")
    typer.echo(_audit(result))
    typer.echo("")
    typer.echo(tls.trust_instructions(result))
