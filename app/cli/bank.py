"""`cact bank`: item banks (import, export, list, key corrections)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, now, problem_line, ready_database, refusals

bank_cli = typer.Typer(help="Item banks: import, export, key corrections.", no_args_is_help=True)


@bank_cli.command("import")
def bank_import(
    path: Annotated[str, typer.Argument(help="Bank file (.yaml/.json/.csv/.xml/.zip) or folder")],
    code: Annotated[str, typer.Option(help="Bank code (CSV and QTI)")] = "",
    title: Annotated[str, typer.Option(help="Bank title (CSV and QTI)")] = "",
    kind: Annotated[str, typer.Option(help="potensi or kompetensi (CSV and QTI)")] = "",
    construct: Annotated[str, typer.Option(help="Default construct for QTI items")] = "",
    skip_unsupported: Annotated[bool, typer.Option(
        "--skip-unsupported", help="Import a QTI package without its unsupported items")] = False,
) -> None:
    """Import a bank as a new version; prints bank code and version, or every problem."""
    from pathlib import Path

    from app.bank.reading import ImportOptions, read_path
    from app.bank.service import import_bank

    if not Path(path).exists():
        raise fail(f"{path}: no such file or folder")
    database = ready_database()
    options = ImportOptions(code=code, title=title, kind=kind, default_construct=construct,
                            skip_unsupported=skip_unsupported)
    with refusals(), database.transaction() as db:
        outcome = import_bank(db, read_path(Path(path)), source=Path(path).name,
                              options=options, actor="cli", actor_id=None, now=now())
    for skipped in outcome.skipped:
        typer.secho(f"  skipped: {problem_line(skipped)}", fg=typer.colors.YELLOW)
    state = "imported" if outcome.created else "unchanged (identical to this version)"
    typer.echo(f"{outcome.bank_code} version {outcome.version}: {outcome.item_count} items, "
               f"{state}")


@bank_cli.command("export")
def bank_export(
    code: str,
    out: Annotated[str, typer.Option("--out", help="Zip file to write")],
    version: Annotated[int, typer.Option("--version", help="Version (default: newest)")] = 0,
) -> None:
    """Write a bank version as a CACT bank zip (bank.yaml + media/)."""
    from pathlib import Path

    from sqlalchemy import select

    from app.bank.export import export_version
    from app.bank.models import BankVersion, ItemBank

    database = ready_database()
    with database.transaction() as db:  # the export is audited (every key and weight in it)
        bank = db.scalar(select(ItemBank).where(ItemBank.code == code))
        if bank is None:
            raise fail(f"No bank {code!r}")
        query = select(BankVersion).where(BankVersion.bank_id == bank.id)
        query = (query.where(BankVersion.version == version) if version
                 else query.order_by(BankVersion.version.desc()).limit(1))
        found = db.scalar(query)
        if found is None:
            raise fail(f"Bank {code} has no version {version}")
        data = export_version(db, found, actor="cli", now=now())
    Path(out).write_bytes(data)  # after the audit row committed: never a file left unrecorded
    typer.echo(f"{code} version {found.version} written to {out}")


@bank_cli.command("list")
def bank_list() -> None:
    """Banks with their versions and item counts."""
    from sqlalchemy import func, select

    from app.bank.models import BankVersion, Item, ItemBank

    database = ready_database()
    with database.transaction(write=False) as db:
        rows = db.execute(
            select(ItemBank.code, ItemBank.kind, BankVersion.version, BankVersion.frozen,
                   func.count(Item.id))
            .join(BankVersion, BankVersion.bank_id == ItemBank.id)
            .outerjoin(Item, Item.bank_version_id == BankVersion.id)
            .group_by(ItemBank.code, ItemBank.kind, BankVersion.version, BankVersion.frozen)
            .order_by(ItemBank.code, BankVersion.version))
        for code, kind, number, frozen, items in rows:
            typer.echo(f"{code}\tv{number}\t{kind.value}\t{items} items"
                       + ("\tfrozen" if frozen else ""))


@bank_cli.command("correct-key")
def bank_correct_key(
    code: str,
    item: Annotated[str, typer.Argument(help="Item code")],
    reason: Annotated[str, typer.Option("--reason", help="Why the key is corrected")],
    version: Annotated[int, typer.Option("--version")] = 0,
    key: Annotated[str, typer.Option("--key", help="New key option (single items)")] = "",
    weights: Annotated[str, typer.Option(
        "--weights", help="New weights, e.g. A=5,B=3,C=1 (other kinds)")] = "",
) -> None:
    """Correct the key or weights of one item, also in a frozen version (audited)."""
    from decimal import Decimal, InvalidOperation

    from sqlalchemy import select

    from app.bank.models import BankVersion, Item, ItemBank
    from app.cli.scoring import rescore_lines
    from app.scoring.corrections import correct_key_and_rescore

    parsed = None
    if weights:
        try:
            parsed = {k.strip(): Decimal(v) for k, v in
                      (pair.split("=", 1) for pair in weights.split(","))}
        except (ValueError, InvalidOperation):
            raise fail("--weights must look like A=5,B=3,C=1", 2) from None
    database = ready_database()
    with refusals("Not corrected: ", ValueError), database.transaction() as db:
        query = (select(Item).join(BankVersion, BankVersion.id == Item.bank_version_id)
                 .join(ItemBank, ItemBank.id == BankVersion.bank_id)
                 .where(ItemBank.code == code, Item.code == item))
        query = (query.where(BankVersion.version == version) if version
                 else query.order_by(BankVersion.version.desc()).limit(1))
        found = db.scalar(query)
        if found is None:
            raise fail(f"No item {item} in bank {code}")
        done = correct_key_and_rescore(db, item=found, key=key or None, weights=parsed,
                                       reason=reason, actor="cli", actor_id=None, now=now())
        revision = done.correction.revision
    typer.echo(f"Key of {item} corrected (key revision {revision})")
    # The rescore already happened: a `cact results rescore` after it finds nothing to change.
    for line in rescore_lines(done.rescore, "Hasil yang memuat butir ini / results holding "
                                            "this item"):
        typer.echo(line)
