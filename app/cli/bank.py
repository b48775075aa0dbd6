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

    from app.bank.export import export_version

    database = ready_database()
    with database.transaction() as db:  # the export is audited (every key and weight in it)
        found = _version(db, code, version)
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


@bank_cli.command("calibrate")
def bank_calibrate(
    code: str,
    version: Annotated[int, typer.Option("--version", help="Version (default: newest)")] = 0,
    session: Annotated[str, typer.Option(
        "--session", help="Only this session's attempts (default: every session)")] = "",
    model: Annotated[str, typer.Option("--model", help="2PL or 1PL")] = "2PL",
    min_responses: Annotated[int, typer.Option(
        "--min-responses", help="Items with fewer responses are listed, not calibrated")] = 200,
    out: Annotated[str, typer.Option("--out", help="CSV of the estimates per item")] = "",
    adopt: Annotated[bool, typer.Option(
        "--adopt", help="Store the estimates as a new version of the bank (audited)")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why they are adopted")] = "",
) -> None:
    """Estimate 1PL/2PL parameters of the single-answer items from the answers collected;
    with --adopt --reason, store them in a new bank version (audited)."""
    from pathlib import Path

    from app.analysis.field_calibration import (
        CalibrationRefused,
        VersionCalibration,
        adopt_calibration,
        calibrate_version,
        to_csv,
    )
    from app.cli.common import find_session

    if adopt and not reason.strip():
        raise fail("--adopt needs --reason (it goes to the audit log)", 2)
    from app.i18n import translate
    from app.settings import get_settings

    database = ready_database()
    try:
        with database.transaction() as db:
            found = _version(db, code, version)
            chosen = find_session(db, session) if session else None
            done: VersionCalibration | None
            if adopt:
                done, outcome = adopt_calibration(
                    db, bank_version_id=found.id, session=chosen, model=model,
                    min_responses=min_responses, reason=reason, actor="cli", actor_id=None,
                    now=now())
            else:
                done = calibrate_version(db, bank_version_id=found.id, session=chosen,
                                         model=model, min_responses=min_responses)
                outcome = None
    except CalibrationRefused as exc:
        raise fail("Tidak dikalibrasi / not calibrated: "
                   + translate(get_settings().language, exc.key, **exc.params)) from None
    if done is None:  # _version found it a moment ago, in the same transaction
        raise fail(f"No bank {code!r} version {version}")
    result = done.calibration
    if not result.persons:
        typer.echo(f"{code} v{done.version}: no finished attempt answered its single-answer "
                   "items" + (f" in session {session}" if session else "") + "; a new version "
                   "made by an import or a calibration has none until a session uses it: give "
                   "--version N of the version the sessions used (`cact bank list`).")
    else:
        typer.echo(f"{code} v{done.version}, {result.model}: {result.persons} persons, "
                   f"{len(result.items)} items calibrated "
                   f"({'converged' if result.converged else 'NOT converged'} after "
                   f"{result.iterations} EM cycles; -2 log L {-2 * result.log_likelihood:.1f}, "
                   f"AIC {result.aic:.1f}, BIC {result.bic:.1f})")
    if result.too_few:
        typer.echo(f"  fewer than {min_responses} responses (not calibrated): "
                   + ", ".join(f"{c} ({n})" for c, n in result.too_few))
    if result.no_variance:
        typer.echo("  everyone right or everyone wrong (not calibrated): "
                   + ", ".join(f"{c} ({n})" for c, n in result.no_variance))
    if done.not_dichotomous:
        typer.echo(f"  {len(done.not_dichotomous)} items are not single-answer (not calibrated)")
    if done.misfit:
        typer.secho(f"  misfit (RMSD > 0.10): {', '.join(done.misfit)}",
                    fg=typer.colors.YELLOW)
    if out:
        Path(out).write_bytes(to_csv(done))
        typer.echo(f"  estimates written to {out}")
    if outcome is not None:
        state = ("new version" if outcome.created
                 else "identical to an existing version, nothing new stored")
        typer.echo(f"Adopted: {code} version {outcome.version} ({state})")


def _version(db, code: str, version: int):
    from sqlalchemy import select

    from app.bank.models import BankVersion, ItemBank

    query = (select(BankVersion).join(ItemBank, ItemBank.id == BankVersion.bank_id)
             .where(ItemBank.code == code))
    query = (query.where(BankVersion.version == version) if version
             else query.order_by(BankVersion.version.desc()).limit(1))
    found = db.scalar(query)
    if found is None:
        raise fail(f"No bank {code!r}" + (f" version {version}" if version else ""))
    return found
