"""`cact programme`: assessment programmes (create, list, attach sessions, results, which
attempt counts)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, find_session, now, ready_database, refusals

programme_cli = typer.Typer(help="Assessment programmes: several sessions, one set of results.",
                            no_args_is_help=True)


def _date(value: str):
    from datetime import date

    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{value!r}: a date is written YYYY-MM-DD", 2) from None


def find_programme(db, code: str):
    from app.programmes.service import programme_by_code

    programme = programme_by_code(db, code)
    if programme is None:
        raise fail(f"No programme {code!r} (`cact programme list`)")
    return programme


@programme_cli.command("create")
def programme_create(
    code: str,
    name: Annotated[str, typer.Option("--name", help="e.g. 'Pemetaan Kompetensi ASN 2026'")],
    purpose: Annotated[str, typer.Option(
        "--purpose", help="mapping (pemetaan) or position (pengisian jabatan)")] = "mapping",
    agency: Annotated[str, typer.Option("--agency", help="The agency (instansi)")] = "",
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD")] = "",
    end: Annotated[str, typer.Option("--end", help="Last day, YYYY-MM-DD")] = "",
) -> None:
    """Create an assessment programme (audited)."""
    from app.programmes.service import ProgrammeError, create_programme

    starts, ends = _date(start), _date(end)
    database = ready_database()
    with refusals("Not created: ", ProgrammeError), database.transaction() as db:
        made = create_programme(db, code=code, name=name, purpose=purpose, agency=agency,
                                starts_on=starts, ends_on=ends, actor="cli", now=now())
        code, purpose = made.code, made.purpose.value
    typer.echo(f"Programme {code} created ({purpose})")


@programme_cli.command("list")
def programme_list() -> None:
    """Programmes with their number of sessions and people."""
    from app.programmes.service import programme_rows

    database = ready_database()
    with database.transaction(write=False) as db:
        for row in programme_rows(db):
            p = row.programme
            typer.echo(f"{p.code}\t{p.purpose.value}\t{row.sessions} sessions\t"
                       f"{row.people} people\t{p.name}")


@programme_cli.command("attach")
def programme_attach(code: str, session: Annotated[str, typer.Argument(help="Session code")]
                     ) -> None:
    """Put a session in the programme; it takes the programme's purpose (audited)."""
    from app.programmes.service import ProgrammeError, attach_session

    database = ready_database()
    with refusals("Not attached: ", ProgrammeError), database.transaction() as db:
        done = attach_session(db, programme=find_programme(db, code),
                              session=find_session(db, session), actor="cli", now=now())
    typer.echo(f"Session {done.session.code} is in programme {code.upper()}")
    if done.stale_results:
        typer.echo(f"  {done.stale_results} stored result(s) were scored for another purpose: "
                   f"`cact results rescore {done.session.code}`")


@programme_cli.command("results")
def programme_results(
    code: str,
    out: Annotated[str, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
) -> None:
    """One row per person across the programme's sessions, from the attempt that counts
    (audited)."""
    from pathlib import Path

    from app.programmes.export import FORMATS, export_results

    if fmt not in FORMATS:
        raise fail("--format is csv or xlsx", 2)
    database = ready_database()
    with database.transaction() as db:
        data = export_results(db, programme=find_programme(db, code), fmt=fmt, actor="cli",
                              now=now())
    Path(out).write_bytes(data)
    typer.echo(f"Results of programme {code.upper()} written to {out}")


@programme_cli.command("choose")
def programme_choose(
    code: str,
    nip: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (audited)")],
    session: Annotated[str, typer.Option(
        "--session", help="The session whose attempt counts; empty: back to the rule")] = "",
) -> None:
    """Choose which of a person's attempts counts in the programme (audited)."""
    from sqlalchemy import select

    from app.delivery.models import Attempt
    from app.programmes.results import choose_attempt
    from app.programmes.service import ProgrammeError
    from app.sessions.models import Participant, RosterEntry, clean_nip

    database = ready_database()
    with refusals("Not changed: ", ProgrammeError), database.transaction() as db:
        programme = find_programme(db, code)
        attempt_id = None
        if session:
            chosen = find_session(db, session)
            attempt_id = db.scalar(
                select(Attempt.id).join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                .join(Participant, Participant.id == RosterEntry.participant_id)
                .where(Attempt.session_id == chosen.id, Participant.nip == clean_nip(nip)))
            if attempt_id is None:
                raise fail(f"NIP {nip} has no attempt in session {chosen.code}")
        row = choose_attempt(db, programme=programme, nip=nip, attempt_id=attempt_id,
                             reason=reason, actor="cli", now=now())
        counted, how = row.session_code, row.chosen_by
    typer.echo(f"NIP {nip}: the attempt of session {counted} counts ({how})")


@programme_cli.command("talent-map")
def programme_talent_map(
    code: str,
    out: Annotated[str, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or pdf (one A4 page)")] = "xlsx",
    unit: Annotated[str, typer.Option("--unit", help="Only this unit (OPD)")] = "",
    job_group: Annotated[str, typer.Option("--job-group", help="Only this job group")] = "",
    lang: Annotated[str, typer.Option("--lang", help="id or en")] = "id",
) -> None:
    """The programme's talent map (nine-box) as XLSX or a printable A4 PDF (audited)."""
    from pathlib import Path

    from app.programmes.talent_map import FORMATS, export_map
    from app.settings import get_settings

    if fmt not in FORMATS:
        raise fail("--format is xlsx or pdf", 2)
    if lang not in ("id", "en"):
        raise fail("--lang is id or en", 2)
    database = ready_database()
    with database.transaction() as db:
        data = export_map(db, programme=find_programme(db, code), fmt=fmt, actor="cli",
                          now=now(), unit=unit, job_group=job_group, lang=lang,
                          zone=get_settings().timezone)
    Path(out).write_bytes(data)
    typer.echo(f"Talent map of programme {code.upper()} written to {out}")


@programme_cli.command("kinerja")
def programme_kinerja(
    code: str,
    file: Annotated[str, typer.Argument(help="CSV with nip, period, rating")],
) -> None:
    """Import kinerja ratings for the programme's people and rescore their results (audited);
    a NIP outside the programme refuses the whole file."""
    from pathlib import Path

    from app.programmes.talent_map import import_programme_kinerja

    path = Path(file)
    if not path.is_file():
        raise fail(f"No file {file!r}", 2)
    database = ready_database()
    with refusals(), database.transaction() as db:
        done = import_programme_kinerja(db, programme=find_programme(db, code),
                                        data=path.read_bytes(), source=path.name,
                                        actor="cli", now=now())
    counts = done.counts
    typer.echo(f"Kinerja for {done.people} people of programme {code.upper()}: "
               f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged; "
               f"{done.rescored} results rescored")
