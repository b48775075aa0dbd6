"""`cact audit`: the hash-chained audit log (verify, tail)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, ready_database

audit_cli = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@audit_cli.command("verify")
def audit_verify(
    head: Annotated[str, typer.Option(
        "--head", help="A head hash noted earlier (session close, backup manifest)")] = "",
    count: Annotated[int, typer.Option(
        "--count", help="The row count noted with it", min=0)] = 0,
) -> None:
    """Check the whole hash chain; exit 1 naming the first bad row. With --head/--count also
    check the log still holds what was noted then (deleting the newest rows leaves a valid
    chain: only an anchor kept elsewhere shows it)."""
    from app import audit

    database = ready_database()
    with database.transaction(write=False) as db:
        result = audit.verify_against(db, head=head or None, count=count or None)
    if not result.ok:
        if result.bad_id is not None:  # the chain itself is broken at that row
            raise fail(f"AUDIT LOG BROKEN at row {result.bad_id}: {result.problem} "
                       f"({result.checked} rows before it are intact)")
        raise fail(f"AUDIT LOG BROKEN: {result.problem}")
    anchored = f"; it holds the noted head{' at row ' + str(count) if count else ''}" if head \
        else (f"; at least the {count} rows noted" if count else "")
    typer.echo(f"Audit log intact: {result.checked} rows, head hash {result.head_hash}"
               f"{anchored}")


@audit_cli.command("tail")
def audit_tail(count: Annotated[int, typer.Option("-n", help="How many rows")] = 20) -> None:
    """Print the newest audit events."""
    from sqlalchemy import select

    from app.audit import AuditEvent

    database = ready_database()
    with database.transaction(write=False) as db:
        rows = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count)))
    for e in reversed(rows):
        typer.echo(f"{e.id}\t{e.at.isoformat()}\t{e.actor}\t{e.action}\t{e.target}\t{e.reason}")
