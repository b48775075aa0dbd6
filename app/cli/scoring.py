"""`cact standards`, `cact results` and `cact performance`: what scoring compares against,
its results, and the kinerja ratings of the nine-box."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import fail, now, ready_database, refusals, session_transaction

if TYPE_CHECKING:
    from app.scoring.service import SessionScoring

standards_cli = typer.Typer(help="Job standards: required competency levels per job.",
                            no_args_is_help=True)
results_cli = typer.Typer(help="Results of a session: rescore, export.", no_args_is_help=True)
performance_cli = typer.Typer(help="Kinerja ratings for the nine-box.", no_args_is_help=True)


@standards_cli.command("load-defaults")
def standards_load_defaults() -> None:
    """Add the default required levels (docs/domain.md) that are missing; never overwrites."""
    from app.scoring.standards import load_defaults

    database = ready_database()
    with database.transaction() as db:
        added = load_defaults(db, actor="cli", now=now())
    typer.echo(f"Job standards: {added} default row(s) added")


@standards_cli.command("import")
def standards_import(
    path: Annotated[str, typer.Argument(help="CSV with job_key,competency,required_level")],
) -> None:
    """Add or change required levels from a CSV; every bad row is listed by row and column
    and nothing is imported then. Existing results change only with `cact results rescore`."""
    from pathlib import Path

    from app.scoring.imports import import_standards, parse_standards

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = ready_database()
    with refusals():
        rows = parse_standards(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            counts = import_standards(db, rows=rows, source=file.name, actor="cli", now=now())
    typer.echo(f"Job standards: {counts.added} added, {counts.updated} changed, "
               f"{counts.unchanged} unchanged")


@standards_cli.command("export")
def standards_export(
    out: Annotated[str, typer.Option("--out", help="File to write (default: standard output)")]
    = "",
) -> None:
    """The job standards table as CSV (job_key,competency,required_level), the format `cact
    standards import` reads; defaults never stored are not in it. Audited."""
    from pathlib import Path

    from app.scoring.imports import export_standards

    database = ready_database()
    with database.transaction() as db:
        data, count = export_standards(db, actor="cli", now=now())
    if out:  # after the audit row committed
        Path(out).write_bytes(data)
        typer.echo(f"{count} job standard row(s) written to {out}")
    else:
        typer.echo(data.decode("utf-8-sig"), nl=False)


def rescore_lines(summary: SessionScoring, subject: str) -> list[str]:
    """What a rescore changed, as `cact results rescore` and `cact bank correct-key` print it:
    results checked, how many changed and in which fields, and each changed result."""
    if not summary.changed and not summary.new:
        return [f"{subject}: sudah mutakhir / already up to date: {summary.scored} result(s) "
                "checked, none changed"]
    counts = f"{summary.changed} changed, {summary.unchanged} unchanged"
    if summary.new:
        counts += f", {summary.new} new"
    lines = [f"{subject}: dihitung ulang / rescored: {summary.scored} result(s), {counts}"]
    fields = summary.as_json()["fields"]
    if fields:
        lines.append("  berubah / changed: "
                     + ", ".join(f"{name} {count}" for name, count in fields.items()))
    for change in summary.changes:
        lines.append(f"  attempt {change['attempt']}: {', '.join(change['fields'])}; total "
                     f"{change['old_total']} -> {change['new_total']}, JPM "
                     f"{change['old_jpm']} -> {change['new_jpm']}")
    return lines


@results_cli.command("rescore")
def results_rescore(
    code: Annotated[str, typer.Argument(help="Session code")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")] = "",
) -> None:
    """Score every handed-in attempt of the session again (audited) and print a summary."""
    from app.scoring.service import rescore_session

    # A ValueError is a bad scoring setting in the session.
    with session_transaction(code, "Not rescored: ", ValueError) as (db, session):
        summary = rescore_session(db, session=session, actor="cli", now=now(), reason=reason)
    for line in rescore_lines(summary, f"Sesi / session {code.upper()}"):
        typer.echo(line)
    typer.echo(f"  {summary.without_attempt} never logged in; categories:")
    for label, count in sorted(summary.categories.items()):
        typer.echo(f"    {label}: {count}")


@results_cli.command("accept")
def results_accept(
    code: Annotated[str, typer.Argument(help="Session code")],
    nip: Annotated[str, typer.Argument(help="The participant's NIP")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is accepted (audited)")],
) -> None:
    """Accept a result that is "tidak dapat dinilai" (too little answered, rapid guessing,
    straight-lining): it is scored as usual from then on. Audited; needs a reason."""
    from app.i18n import translate
    from app.scoring.decisions import DecisionRefused, accept
    from app.settings import get_settings

    try:
        with session_transaction(code) as (db, session):
            result = accept(db, session=session, nip=nip, reason=reason, actor="cli",
                            now=now())
            category, jpm = result.category, result.jpm
    except DecisionRefused as exc:
        raise fail("Tidak diterima / not accepted: "
                   + translate(get_settings().language, exc.key, **exc.params)) from None
    typer.echo(f"NIP {nip}: diterima / accepted; JPM {jpm if jpm is not None else '-'}, "
               f"category {category or '-'}")


@results_cli.command("retake")
def results_retake(
    code: Annotated[str, typer.Argument(help="Session code")],
    nip: Annotated[str, typer.Argument(help="The participant's NIP")],
    to: Annotated[str, typer.Option("--to", help="The session of the retake (not closed)")],
    reason: Annotated[str, typer.Option("--reason", help="Why a retake (audited)")],
) -> None:
    """Schedule a retake of a result that is "tidak dapat dinilai" in another session that is
    not closed: the participant is put on its roster with a fresh login token (print the card
    with `cact sessions tokens`); this result stays without JPM, category and box. Audited;
    needs a reason."""
    from app.cli.common import find_session, secret_key
    from app.i18n import translate
    from app.scoring.decisions import DecisionRefused, schedule_retake
    from app.sessions.models import Participant, TestSession
    from app.sessions.roster import RosterRow, import_roster
    from app.settings import get_settings

    secret, moment = secret_key(), now()

    def enrol(target: TestSession, person: Participant) -> None:
        # The roster import of one row: the entry gets a fresh token as every imported one.
        import_roster(db, session=target, rows=[RosterRow(
            nip=person.nip, name=person.name, job_group=person.job_group.value,
            grade=person.grade, position=person.position, unit=person.unit)],
            secret=secret, actor="cli", now=moment)

    try:
        with session_transaction(code) as (db, session):
            target = find_session(db, to)
            schedule_retake(db, session=session, nip=nip, target_session=target, reason=reason,
                            actor="cli", now=moment, enrol=enrol)
    except DecisionRefused as exc:
        raise fail("Tidak dijadwalkan / not scheduled: "
                   + translate(get_settings().language, exc.key, **exc.params)) from None
    typer.echo(f"NIP {nip}: ujian ulang dijadwalkan di sesi / retake scheduled in session "
               f"{target.code}; the login token is on its roster")


@results_cli.command("export")
def results_export(
    code: Annotated[str, typer.Argument(help="Session code")],
    out: Annotated[str, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
) -> None:
    """One row per participant: NIP, name, job group, construct scores and levels, required
    levels and gaps, theta and SE, JPM, category, potensi band, nine-box, items answered
    overall and per section (xlsx adds a sheet of item responses; the columns are in
    docs/psychometrics.md). Audited."""
    from pathlib import Path

    from app.reports.export import export_results

    if fmt not in ("csv", "xlsx"):
        raise fail(f"--format must be csv or xlsx, not {fmt!r}", 2)
    with session_transaction(code) as (db, session):
        data, table = export_results(db, session, fmt=fmt, actor="cli", now=now())
    Path(out).write_bytes(data)  # after the audit row committed
    scored = sum(1 for row in table.rows if row.scored)
    typer.echo(f"{len(table.rows)} participant(s), {scored} with a result, written to {out}")


@performance_cli.command("import")
def performance_import(
    path: Annotated[str, typer.Argument(help="CSV with nip,period,rating")],
) -> None:
    """Kinerja ratings (below / as_expected / above, the Indonesian predicates, or a 0-100
    score); the nine-box of those participants' results follows at once."""
    from pathlib import Path

    from app.scoring.imports import import_ratings, parse_ratings

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = ready_database()
    with refusals():
        rows = parse_ratings(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            counts, rescored = import_ratings(db, rows=rows, source=file.name, actor="cli",
                                              now=now())
    typer.echo(f"Kinerja ratings: {counts.added} added, {counts.updated} changed, "
               f"{counts.unchanged} unchanged; {rescored} result(s) rescored")
