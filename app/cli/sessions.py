"""`cact session`, `cact roster` and `cact attempt`: test sessions, who sits them, and a
taker's seat."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    fail,
    find_session,
    now,
    ready_database,
    refusals,
    secret_key,
    session_transaction,
)
from app.settings import get_settings

session_cli = typer.Typer(help="Test sessions: create, open, pause, close, tokens, settings.",
                          no_args_is_help=True)
roster_cli = typer.Typer(help="Participants of a session.", no_args_is_help=True)
attempt_cli = typer.Typer(help="Test takers' attempts: unlock a seat.", no_args_is_help=True)


def _local_time(value: str):
    """'2026-12-01 08:00' in the agency's time zone (CACT_TIMEZONE)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(get_settings().timezone)
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    except ValueError:
        raise fail(f"{value!r}: write dates as 'YYYY-MM-DD HH:MM'", 2) from None


@session_cli.command("create")
def session_create(
    code: str,
    blueprint: Annotated[str, typer.Option("--blueprint", help="Blueprint code")],
    start: Annotated[str, typer.Option("--start", help="'YYYY-MM-DD HH:MM', local time")],
    end: Annotated[str, typer.Option("--end", help="'YYYY-MM-DD HH:MM', local time")],
    name: Annotated[str, typer.Option("--name")] = "",
    room: Annotated[str, typer.Option("--room")] = "",
    proctor: Annotated[list[str] | None, typer.Option("--proctor", help="Repeatable")] = None,
    programme: Annotated[str, typer.Option(
        "--programme", help="The assessment programme the session is part of")] = "",
) -> None:
    """Schedule a session (its bank versions are frozen from now on)."""
    from app.cli.programmes import find_programme
    from app.programmes.service import ProgrammeError, attach_session
    from app.sessions.service import SessionError, create_session

    starts, ends = _local_time(start), _local_time(end)
    database = ready_database()
    with refusals("Not created: ", SessionError, ProgrammeError), \
            database.transaction() as db:
        session = create_session(db, code=code, name=name, room=room, blueprint_code=blueprint,
                                 starts_at=starts, ends_at=ends,
                                 proctor_usernames=proctor or [], actor="cli", now=now())
        if programme:
            attach_session(db, programme=find_programme(db, programme), session=session,
                           actor="cli", now=now())
    typer.echo(f"Session {code.upper()} scheduled"
               + (f" in programme {programme.upper()}" if programme else ""))


def _session_state(code: str, action: str, reason: str = "") -> None:
    from app.sessions.service import SessionError, change_state

    with session_transaction(code, "", SessionError) as (db, session):
        handed_in = change_state(db, session=session, action=action, actor="cli",
                                 now=now(), reason=reason)
        state = session.state.value
    extra = f"; {handed_in} attempt(s) handed in" if action == "close" else ""
    typer.echo(f"Session {code.upper()} is {state}{extra}")


@session_cli.command("open")
def session_open(code: str) -> None:
    """Let takers in (from scheduled or paused)."""
    _session_state(code, "open")


@session_cli.command("prepare")
def session_prepare(code: str) -> None:
    """Draw every taker's form now (the day before), so that logins at the start only check
    the token and bind the seat. Run again after a roster change to draw what is missing;
    opening a session prepares it if this was not done."""
    import time

    from app.sessions.prepare import PrepareRefused, prepare_session

    started = time.perf_counter()
    with session_transaction(code, "Not prepared: ", PrepareRefused) as (db, session):
        done = prepare_session(db, session=session, actor="cli", now=now())
    typer.echo(f"Session {code.upper()} prepared: {done.drawn} form(s) drawn "
               f"({done.items} item rows), {done.already} already there, "
               f"in {time.perf_counter() - started:.1f} s")


@session_cli.command("pause")
def session_pause(
    code: str,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'switch mati' (audited)")] = "",
) -> None:
    """Pause the session: every taker's clock stops (from the server's own console when the
    proctors' PCs cannot reach it); `cact session resume` starts them again."""
    _session_state(code, "pause", reason)


@session_cli.command("resume")
def session_resume(code: str) -> None:
    """Open a paused session again."""
    _session_state(code, "resume")


@session_cli.command("close")
def session_close(
    code: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Close for good: every attempt still running is handed in."""
    if not yes and not typer.confirm(f"Close {code} and hand in every running attempt?"):
        raise typer.Exit(1)
    _session_state(code, "close")
    from app import audit

    with ready_database().transaction(write=False) as db:
        anchor = audit.verify(db)
    # Deleting the newest audit rows leaves a valid chain: an anchor written down elsewhere
    # (the close sheet) is what shows it later.
    typer.echo(f"Catat / note on the close sheet: audit log {anchor.checked} rows, head hash "
               f"{anchor.head_hash} (check later: cact audit verify --head {anchor.head_hash} "
               f"--count {anchor.checked})")


@session_cli.command("list")
def session_list() -> None:
    """Sessions with state and roster size."""
    from app.sessions.service import session_rows

    database = ready_database()
    with database.transaction(write=False) as db:
        for row in session_rows(db):
            typer.echo(f"{row.code}\t{row.state}\t{row.participants} participants\t{row.name}")


@session_cli.command("settings")
def session_settings(
    code: str,
    purpose: Annotated[str, typer.Option(
        "--purpose", metavar="mapping|position",
        help="mapping: competency mapping (Optimal ...); position: filling a position "
             "(Memenuhi Syarat ...; 'placement' is accepted too)")] = "",
    jpm_cap: Annotated[str, typer.Option(
        "--jpm-cap", metavar="on|off", help="on: the JPM is at most 100")] = "",
) -> None:
    """Show the session's scoring settings, or change them (audited). Stored results are not
    rescored: the command says when `cact results rescore CODE` is needed."""
    from app.scoring.engine import CATEGORIES
    from app.sessions.scoring_settings import set_scoring_settings
    from app.sessions.service import SessionError

    with session_transaction(code, "Not changed: ", SessionError) as (db, session):
        change = set_scoring_settings(db, session=session, purpose=purpose or None,
                                      jpm_cap=jpm_cap or None, actor="cli", now=now())
        code = session.code
    new = change.new
    word = {"mapping": "mapping", "placement": "position"}.get(new.purpose, new.purpose)
    if change.changed:
        typer.echo(f"Session {code}: scoring settings changed (audited)")
    typer.echo(f"Session {code} scoring settings:")
    labels = " / ".join(label for _, label in CATEGORIES.get(new.purpose, []))
    typer.echo(f"  purpose: {word} ({labels})")
    typer.echo(f"  jpm cap: {'on (JPM at most 100)' if new.jpm_cap else 'off'}")
    if change.stale_results:
        typer.echo(f"{change.stale_results} result(s) were scored with other settings: run "
                   f"`cact results rescore {code}` for them to follow these settings")


@session_cli.command("tokens")
def session_tokens(
    code: str,
    fmt: Annotated[str, typer.Option("--format", help="csv (nip,name,token) or pdf (cards)")]
    = "csv",
    out: Annotated[str, typer.Option("--out", help="File (CSV default: standard output)")] = "",
    reissue: Annotated[str, typer.Option(
        "--reissue", metavar="NIP", help="Give this participant a new token instead")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why (with --reissue)")] = "",
    lang: Annotated[str, typer.Option("--lang", help="Language of the cards: id or en")] = "id",
) -> None:
    """Login tokens for printing cards: CSV or a PDF of cards (10 per A4 page). Every export,
    and every reissue, is audited (without the tokens)."""
    from pathlib import Path

    from app.sessions import roster
    from app.sessions.cards import card_labels, cards_pdf
    from app.sessions.models import clean_nip
    from app.sessions.service import SessionError

    if fmt not in ("csv", "pdf"):
        raise fail(f"--format must be csv or pdf, not {fmt!r}", 2)
    if lang not in ("id", "en"):
        raise fail(f"--lang must be id or en, not {lang!r}", 2)
    if fmt == "pdf" and not out and not reissue:
        raise fail("a PDF needs --out FILE (it is not printed to the terminal)", 2)
    with session_transaction(code, "Not done: ", SessionError) as (db, session):
        secret = secret_key()
        if reissue:
            token = roster.reissue_token(db, session=session, nip=reissue, reason=reason,
                                         secret=secret, actor="cli", now=now())
        else:
            rows = roster.export_tokens(db, session=session, secret=secret, fmt=fmt,
                                        actor="cli", now=now())
            data = (cards_pdf(session=session, rows=rows, labels=card_labels(lang))
                    if fmt == "pdf" else roster.tokens_to_csv(rows).encode("utf-8"))
    if reissue:  # shown only once committed, so a printed token always works
        typer.echo(f"New token for NIP {clean_nip(reissue)}: {token} "
                   "(the old one no longer works)")
        return
    if out:
        Path(out).write_bytes(data)
        typer.echo(f"{len(rows)} token(s) written to {out}")
    else:
        typer.echo(data.decode("utf-8"), nl=False)


@roster_cli.command("import")
def roster_import(code: str, path: str) -> None:
    """Add participants from a CSV (nip,name,job_group,grade,position,unit or the Indonesian
    headers); every problem is listed by row and column and nothing is imported then."""
    from pathlib import Path

    from app.sessions.roster import import_roster, parse_roster
    from app.sessions.service import SessionError

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = ready_database()
    with refusals("Not imported: ", SessionError):
        # Parsed before the transaction: a file with problems never touches the database.
        rows = parse_roster(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            session = find_session(db, code)
            added, kept = import_roster(db, session=session, rows=rows, secret=secret_key(),
                                        actor="cli", now=now())
    typer.echo(f"Roster of {code.upper()}: {added} added, {kept} already there")


@roster_cli.command("remove")
def roster_remove(
    code: Annotated[str, typer.Argument(help="Session code")],
    nip: Annotated[str, typer.Argument(help="The participant's NIP")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'pindah ke hari kedua'")],
) -> None:
    """Take someone off a session's roster (refused once they have started; audited)."""
    from app.sessions.models import clean_nip
    from app.sessions.roster import remove_from_roster
    from app.sessions.service import SessionError

    with session_transaction(code, "Not removed: ", SessionError) as (db, session):
        remove_from_roster(db, session=session, nip=nip, reason=reason, actor="cli", now=now())
    typer.echo(f"NIP {clean_nip(nip)} removed from the roster of {code.upper()}")


@attempt_cli.command("unlock")
def attempt_unlock(
    session: Annotated[str, typer.Argument(help="Session code")],
    nip: Annotated[str, typer.Argument(help="The participant's NIP")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'PC 12 rusak'")],
) -> None:
    """Let a participant continue on another computer (time left is kept; audited)."""
    from sqlalchemy import select

    from app.delivery.attempts import unlock_seat
    from app.delivery.models import Attempt
    from app.sessions.models import Participant, RosterEntry, TestSession

    database = ready_database()
    with refusals("Not unlocked: ", ValueError), database.transaction() as db:
        attempt = db.scalar(
            select(Attempt).join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .join(TestSession, TestSession.id == Attempt.session_id)
            .where(TestSession.code == session, Participant.nip == nip.strip()))
        if attempt is None:
            raise fail(f"No attempt of NIP {nip} in session {session} (not logged in yet?)")
        unlock_seat(db, attempt=attempt, reason=reason, actor="cli", now=now())
    typer.echo(f"Unlocked: NIP {nip} may log in on another computer")
