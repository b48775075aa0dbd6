"""`cact talent`: talent management from a programme's results (key positions and their
candidates)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, now, ready_database, refusals

talent_cli = typer.Typer(help="Talent management: key positions and their candidates.",
                         no_args_is_help=True)


@talent_cli.command("position-create")
def position_create(
    key: str,
    name: Annotated[str, typer.Option("--name", help="e.g. 'Kepala Dinas Pendidikan'")],
    job_key: Annotated[str, typer.Option(
        "--job-key", help="The job standard whose levels it starts from: a job group "
                          "(administrator, pengawas, pelaksana) or 'fungsional:<grade>'")],
    unit: Annotated[str, typer.Option("--unit", help="The unit (OPD)")] = "",
) -> None:
    """Mark a key position; its required levels are copied from the job standard (audited)."""
    from app.programmes.candidates import create_position
    from app.programmes.service import ProgrammeError

    database = ready_database()
    with refusals("Not created: ", ProgrammeError), database.transaction() as db:
        made = create_position(db, key=key, name=name, unit=unit, job_key=job_key,
                               actor="cli", now=now())
        key, levels = made.key, ", ".join(f"{c} {v}" for c, v in sorted(made.required.items()))
    typer.echo(f"Key position {key} created: {levels}")


@talent_cli.command("positions")
def positions_list() -> None:
    """The key positions with their required levels."""
    from app.programmes.candidates import positions

    database = ready_database()
    with database.transaction(write=False) as db:
        for p in positions(db):
            levels = ",".join(f"{c}={v}" for c, v in sorted((p.required or {}).items()))
            typer.echo(f"{p.key}\t{p.job_key}\t{p.name}\t{p.unit}\t{levels}")


@talent_cli.command("candidates")
def candidates(
    programme: str,
    position: Annotated[str, typer.Option("--position", help="The key position's key")],
    out: Annotated[str, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv (the only format)")] = "csv",
) -> None:
    """Everyone in the programme with a scoreable result, ranked by JPM against the position's
    required levels, with the gaps per competency, as CSV in rank order (audited). Those not
    ranked (not scoreable, no result) are printed, not written."""
    from pathlib import Path

    from app.programmes.candidates import export_candidates, position_by_key
    from app.programmes.service import programme_by_code

    if fmt != "csv":
        raise fail("--format is csv", 2)
    database = ready_database()
    with database.transaction() as db:
        found = programme_by_code(db, programme)
        if found is None:
            raise fail(f"No programme {programme!r} (`cact programme list`)")
        chosen = position_by_key(db, position)
        if chosen is None:
            raise fail(f"No key position {position!r} (`cact talent positions`)")
        pool, data = export_candidates(db, programme=found, position=chosen, actor="cli",
                                       now=now())
        code, key = found.code, chosen.key
        ranked, meeting, apart = len(pool.ranked), pool.meeting, dict(pool.apart)
    Path(out).write_bytes(data)
    typer.echo(f"{ranked} candidate(s) of programme {code} for {key} written to {out}; "
               f"{meeting} meet the threshold")
    for reason, nips in apart.items():
        typer.echo(f"  not ranked ({reason}): {len(nips)}: {', '.join(nips)}")
