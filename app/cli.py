"""The ``cact`` command: database, accounts, demo data, server, audit log.

Each command runs in one transaction (app.db.Database.transaction): it changes everything it
says it changes, or nothing.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import sys
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from app.ops.pdeathsig import PARENT_PID_ENV
from app.settings import EX_CONFIG, SettingsError, get_settings

cli = typer.Typer(
    help="CACT server: computer-assisted competency tests. Settings come from CACT_* variables "
    "and the file CACT_CONFIG, else /etc/cact/cact.env, else ./.env (`cact config show`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema: upgrade, downgrade, status.", no_args_is_help=True)
user_cli = typer.Typer(help="Admin and proctor accounts.", no_args_is_help=True)
audit_cli = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
attempt_cli = typer.Typer(help="Test takers' attempts: unlock a seat.", no_args_is_help=True)
session_cli = typer.Typer(help="Test sessions: create, open, pause, close, tokens.",
                          no_args_is_help=True)
roster_cli = typer.Typer(help="Participants of a session.", no_args_is_help=True)
bank_cli = typer.Typer(help="Item banks: import, export, key corrections.", no_args_is_help=True)
blueprint_cli = typer.Typer(help="Test blueprints: import, list.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")
cli.add_typer(bank_cli, name="bank")
cli.add_typer(blueprint_cli, name="blueprint")
cli.add_typer(session_cli, name="session")
cli.add_typer(roster_cli, name="roster")
cli.add_typer(attempt_cli, name="attempt")
cli.add_typer(audit_cli, name="audit")
standards_cli = typer.Typer(help="Job standards: required competency levels per job.",
                            no_args_is_help=True)
results_cli = typer.Typer(help="Results of a session: rescore, export.", no_args_is_help=True)
performance_cli = typer.Typer(help="Kinerja ratings for the nine-box.", no_args_is_help=True)
cli.add_typer(standards_cli, name="standards")
cli.add_typer(results_cli, name="results")
cli.add_typer(performance_cli, name="performance")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


_warned_root = False
_checked_secret: str | None = None


def root_warning(data_dir, *, euid: int | None = None) -> str | None:
    """A warning when running as root on a data directory that belongs to another user: files
    root creates there (a key, SQLite's -wal/-shm) would be unreadable to the service."""
    import pwd

    euid = os.geteuid() if euid is None else euid
    try:
        owner = os.stat(data_dir).st_uid
    except OSError:
        return None
    if euid != 0 or owner == 0:
        return None
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    return (f"Peringatan / warning: running as root, but the data directory {data_dir} belongs "
            f"to {name}; files root creates there may lock the service out. Run commands as "
            f"that user: sudo -u {name} cact ...")


def _warn_if_root(settings) -> None:
    global _warned_root
    if not _warned_root:
        _warned_root = True
        message = root_warning(settings.data_dir)
        if message:
            typer.secho(message, fg=typer.colors.YELLOW, err=True)


def _database():
    from app.db import Database

    settings = get_settings()
    _warn_if_root(settings)
    return Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)


def _newer_database_message(have: str | None) -> str:
    return (f"Database dibuat oleh versi CACT yang lebih baru / the database was made by a newer "
            f"CACT version (revision {have}); install that version instead (do not downgrade "
            "the database).")


def _schema_state(database) -> tuple[bool, str | None, str | None, bool]:
    """(is current, revision in the database, head of the code, revision known to the code)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from app.db import alembic_config, schema_is_current

    current, have, head = schema_is_current(database.engine)
    known = True
    if have is not None and not current:
        script = ScriptDirectory.from_config(alembic_config(database.url))
        try:
            known = script.get_revision(have) is not None
        except CommandError:  # alembic's ResolutionError: a revision this code does not have
            known = False
    return current, have, head, known


def _require_current_schema(database, *, older_code: int = 1) -> None:
    current, have, head, known = _schema_state(database)
    if not known:
        raise fail(_newer_database_message(have), EX_CONFIG)
    if not current:
        raise fail(
            f"Database schema is at {have or 'nothing'}, the code needs {head}. "
            "Run `cact db upgrade` first (back up the database before upgrading production).",
            older_code,
        )


def _ready_database(*, older_code: int = 1):
    """The database, refusing a schema that is not the code's and a secret key that is not the
    database's (app/ops/keycheck.py; exit 78 naming the key file and the fix). ``older_code``
    is the exit code for a schema older than the code."""
    global _checked_secret
    from app.ops import keycheck

    database = _database()
    _require_current_schema(database, older_code=older_code)
    _checked_secret = keycheck.ensure(database, get_settings(), now=_now())
    return database


def _secret() -> str:
    """The secret key, checked against the database by :func:`_ready_database`."""
    if _checked_secret is None:
        _ready_database().dispose()
    if _checked_secret is None:  # _ready_database() sets it or exits
        raise RuntimeError("the secret key was not checked")
    return _checked_secret


def _session(db, code: str):
    """The session with this code, or exit 1 saying there is none."""
    from app.sessions.service import session_by_code

    session = session_by_code(db, code)
    if session is None:
        raise fail(f"No session {code!r}")
    return session


def _now():
    from app.clock import SystemClock

    return SystemClock().now()


# -- db -----------------------------------------------------------------------------------------


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from app import db

    settings = get_settings()
    database = _database()
    try:
        _current, have, _head, known = _schema_state(database)
    finally:
        database.dispose()
    if not known:
        raise fail(_newer_database_message(have), EX_CONFIG)
    db.upgrade(settings.database_url, revision)
    typer.echo(f"Database at {revision}: {_safe_url(settings.database_url)}")
    if revision == "head":
        # The key belongs with the database: a new, empty database gets its key now, made by
        # whoever migrates it (the installer runs this as the service user), and an existing
        # one is checked against its key (app/ops/keycheck.py).
        _ready_database().dispose()


def serving_since(database, settings) -> float | None:
    """Seconds since a server last wrote its heartbeat to this database (ServerState
    "heartbeat", every heartbeat_interval_s from every worker) when that is recent enough to
    mean a server is serving it (under 3 intervals), else None."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.ops.state import get_state

    try:
        with database.transaction(write=False) as db:
            row = get_state(db, "heartbeat")
    except SQLAlchemyError:  # no server_state table yet (an older schema): nothing serves it
        return None
    if row is None:
        return None
    age = (_now() - row.updated_at).total_seconds()
    return age if age < 3 * settings.heartbeat_interval_s else None


# ignore_unknown_options: "-1" (one step back) is a revision, not an option.
@db_cli.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Migrate the database back to REVISION (\"base\" removes every table: data is lost).
    Refused while a server is serving the database; asks first unless --yes."""
    from sqlalchemy.exc import SQLAlchemyError

    from app import audit, db

    if revision.startswith("--"):
        raise fail(f"unknown option {revision}; see cact db downgrade --help", 2)
    settings = get_settings()
    database = _database()
    try:
        _current, have, _head, known = _schema_state(database)
        if not known:
            raise fail(_newer_database_message(have), EX_CONFIG)
        age = serving_since(database, settings)
        if age is not None:
            raise fail(
                "Server sedang melayani database ini / the server is serving this database "
                f"(heartbeat {age:.0f} s ago): stop it first: systemctl stop cact"
            )
        if not yes:
            warning = ("every table is removed and ALL DATA IS LOST" if revision == "base"
                       else "tables and columns added after it are removed with their data")
            typer.confirm(
                f"Downgrade {_safe_url(settings.database_url)} from {have} to {revision}: "
                f"{warning}. Back up first (cact backup). Continue?", abort=True)
        db.downgrade(settings.database_url, revision)
        try:  # recorded when the audit log survives the downgrade (it does unless "base")
            with database.transaction() as session:
                audit.record(session, actor="cli", action="db.downgrade", now=_now(),
                             target=revision, data={"from": have})
        except SQLAlchemyError:
            pass
    finally:
        database.dispose()
    typer.echo(f"Database at {revision}")


@db_cli.command("status")
def db_status() -> None:
    """Show the database's revision and whether it matches the code."""
    database = _database()
    current, have, head, known = _schema_state(database)
    typer.echo(f"database: {_safe_url(database.url)}\nrevision: {have}\ncode head: {head}")
    if not known:
        raise fail(_newer_database_message(have), EX_CONFIG)
    if not current:
        raise typer.Exit(1)


@db_cli.command("revision", hidden=True)
def db_revision(message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """(Developers) autogenerate a migration from the models."""
    from alembic import command

    from app.db import alembic_config

    command.revision(alembic_config(get_settings().database_url), message=message,
                     autogenerate=True)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- users --------------------------------------------------------------------------------------


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Kata sandi / password: ")
    if getpass.getpass("Ulangi / repeat: ") != first:
        raise fail("The two passwords differ; nothing was changed.")
    return first


@user_cli.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Login name (lower case)")],
    role: Annotated[str, typer.Option("--role", help="admin or proctor")],
    full_name: Annotated[str, typer.Option("--full-name")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create an admin or proctor account (password from a prompt or --password-stdin)."""
    from app.auth import service
    from app.auth.models import Role
    from app.auth.security import settings_hasher

    if role not in {r.value for r in Role}:
        raise fail(f"--role must be admin or proctor, not {role!r}", 2)
    settings = get_settings()
    password = _read_password(password_stdin)
    database = _ready_database()
    hasher = settings_hasher(settings)
    try:
        with database.transaction() as db:
            user = service.create_user(db, hasher=hasher, username=username, password=password,
                                       role=Role(role), full_name=full_name, actor="cli",
                                       now=_now())
            name = user.username
    except service.AccountError as exc:
        raise fail(f"Not created: {exc}") from None
    typer.echo(f"Created {role} {name}")


@user_cli.command("set-password")
def user_set_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password (ends that account's open sessions)."""
    from sqlalchemy import select

    from app.auth import service
    from app.auth.models import User
    from app.auth.security import settings_hasher

    settings = get_settings()
    password = _read_password(password_stdin)
    database = _ready_database()
    hasher = settings_hasher(settings)
    try:
        with database.transaction() as db:
            user = db.scalar(select(User).where(User.username == username.strip().lower()))
            if user is None:
                raise fail(f"No user {username!r}")
            service.set_password(db, hasher=hasher, user=user, password=password, actor="cli",
                                 now=_now())
    except service.AccountError as exc:
        raise fail(f"Not changed: {exc}") from None
    typer.echo(f"Password of {username} changed")


@user_cli.command("list")
def user_list() -> None:
    """List accounts."""
    from sqlalchemy import select

    from app.auth.models import User

    database = _ready_database()
    with database.transaction(write=False) as db:
        for user in db.scalars(select(User).order_by(User.username)):
            state = "active" if user.is_active else "disabled"
            typer.echo(f"{user.username}\t{user.role.value}\t{state}\t{user.full_name}")


# -- banks and blueprints -----------------------------------------------------------------------


def _problem_line(problem) -> str:
    """``str(problem)``, with the message in Indonesian when the server speaks Indonesian."""
    if get_settings().language != "id":
        return str(problem)
    return str(dataclasses.replace(problem, message=problem.text("id")))


def _print_problems(problems) -> None:
    typer.secho(f"Nothing was imported: {len(problems)} problem(s).", fg=typer.colors.RED,
                err=True)
    for problem in problems:
        typer.echo(f"  {_problem_line(problem)}", err=True)


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

    from app.bank.parsed import ImportFailed
    from app.bank.reading import ImportOptions, read_path
    from app.bank.service import import_bank

    if not Path(path).exists():
        raise fail(f"{path}: no such file or folder")
    database = _ready_database()
    options = ImportOptions(code=code, title=title, kind=kind, default_construct=construct,
                            skip_unsupported=skip_unsupported)
    try:
        with database.transaction() as db:
            outcome = import_bank(db, read_path(Path(path)), source=Path(path).name,
                                  options=options, actor="cli", actor_id=None, now=_now())
    except ImportFailed as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    for skipped in outcome.skipped:
        typer.secho(f"  skipped: {_problem_line(skipped)}", fg=typer.colors.YELLOW)
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

    database = _ready_database()
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
        data = export_version(db, found, actor="cli", now=_now())
    Path(out).write_bytes(data)  # after the audit row committed: never a file left unrecorded
    typer.echo(f"{code} version {found.version} written to {out}")


@bank_cli.command("list")
def bank_list() -> None:
    """Banks with their versions and item counts."""
    from sqlalchemy import func, select

    from app.bank.models import BankVersion, Item, ItemBank

    database = _ready_database()
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
    from app.scoring.corrections import correct_key

    parsed = None
    if weights:
        try:
            parsed = {k.strip(): Decimal(v) for k, v in
                      (pair.split("=", 1) for pair in weights.split(","))}
        except (ValueError, InvalidOperation):
            raise fail("--weights must look like A=5,B=3,C=1", 2) from None
    database = _ready_database()
    try:
        with database.transaction() as db:
            query = (select(Item).join(BankVersion, BankVersion.id == Item.bank_version_id)
                     .join(ItemBank, ItemBank.id == BankVersion.bank_id)
                     .where(ItemBank.code == code, Item.code == item))
            query = (query.where(BankVersion.version == version) if version
                     else query.order_by(BankVersion.version.desc()).limit(1))
            found = db.scalar(query)
            if found is None:
                raise fail(f"No item {item} in bank {code}")
            correction = correct_key(db, item=found, key=key or None, weights=parsed,
                                     reason=reason, actor="cli", actor_id=None, now=_now())
            revision = correction.revision
    except ValueError as exc:
        raise fail(f"Not corrected: {exc}") from None
    typer.echo(f"Key of {item} corrected (key revision {revision})")


@blueprint_cli.command("import")
def blueprint_import(path: str) -> None:
    """Import (create or replace) a blueprint from a cact-blueprint/1 YAML file."""
    from pathlib import Path

    from app.assembly.service import import_blueprint
    from app.bank.parsed import ImportFailed

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = _ready_database()
    try:
        with database.transaction() as db:
            blueprint = import_blueprint(db, file.read_text(encoding="utf-8"), source=file.name,
                                         actor="cli", now=_now())
            summary = f"{blueprint.code}: {len(blueprint.spec['sections'])} sections"
    except ImportFailed as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    typer.echo(f"Blueprint {summary}")


@blueprint_cli.command("list")
def blueprint_list() -> None:
    """Blueprints with their sections and item counts."""
    from sqlalchemy import select

    from app.assembly.models import Blueprint

    database = _ready_database()
    with database.transaction(write=False) as db:
        for bp in db.scalars(select(Blueprint).order_by(Blueprint.code)):
            sections = bp.spec.get("sections", [])
            items = sum(p["count"] for s in sections for p in s["picks"])
            typer.echo(f"{bp.code}\t{bp.name}\t{len(sections)} sections\t{items} items")


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
) -> None:
    """Schedule a session (its bank versions are frozen from now on)."""
    from app.sessions.service import SessionError, create_session

    starts, ends = _local_time(start), _local_time(end)
    database = _ready_database()
    try:
        with database.transaction() as db:
            create_session(db, code=code, name=name, room=room, blueprint_code=blueprint,
                           starts_at=starts, ends_at=ends, proctor_usernames=proctor or [],
                           actor="cli", now=_now())
    except SessionError as exc:
        raise fail(f"Not created: {exc}") from None
    typer.echo(f"Session {code.upper()} scheduled")


def _session_state(code: str, action: str, reason: str = "") -> None:
    from app.sessions.service import SessionError, change_state

    database = _ready_database()
    try:
        with database.transaction() as db:
            session = _session(db, code)
            handed_in = change_state(db, session=session, action=action, actor="cli",
                                     now=_now(), reason=reason)
            state = session.state.value
    except SessionError as exc:
        raise fail(str(exc)) from None
    extra = f"; {handed_in} attempt(s) handed in" if action == "close" else ""
    typer.echo(f"Session {code.upper()} is {state}{extra}")


@session_cli.command("open")
def session_open(code: str) -> None:
    """Let takers in (from scheduled or paused)."""
    _session_state(code, "open")


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

    with _ready_database().transaction(write=False) as db:
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

    database = _ready_database()
    with database.transaction(write=False) as db:
        for row in session_rows(db):
            typer.echo(f"{row.code}\t{row.state}\t{row.participants} participants\t{row.name}")


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
    from app.sessions.service import SessionError

    if fmt not in ("csv", "pdf"):
        raise fail(f"--format must be csv or pdf, not {fmt!r}", 2)
    if lang not in ("id", "en"):
        raise fail(f"--lang must be id or en, not {lang!r}", 2)
    if fmt == "pdf" and not out and not reissue:
        raise fail("a PDF needs --out FILE (it is not printed to the terminal)", 2)
    database = _ready_database()
    secret = _secret()
    try:
        with database.transaction() as db:
            session = _session(db, code)
            if reissue:
                token = roster.reissue_token(db, session=session, nip=reissue, reason=reason,
                                             secret=secret, actor="cli", now=_now())
            else:
                rows = roster.export_tokens(db, session=session, secret=secret, fmt=fmt,
                                            actor="cli", now=_now())
                data = (cards_pdf(session=session, rows=rows, labels=card_labels(lang))
                        if fmt == "pdf" else roster.tokens_to_csv(rows).encode("utf-8"))
    except SessionError as exc:
        raise fail(f"Not done: {exc}") from None
    if reissue:  # shown only once committed, so a printed token always works
        typer.echo(f"New token for NIP {roster.clean_nip(reissue)}: {token} "
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

    from app.bank.parsed import ImportFailed
    from app.sessions.roster import import_roster, parse_roster
    from app.sessions.service import SessionError

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = _ready_database()
    try:
        rows = parse_roster(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            session = _session(db, code)
            added, kept = import_roster(db, session=session, rows=rows,
                                        secret=_secret(),
                                        actor="cli", now=_now())
    except ImportFailed as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    except SessionError as exc:
        raise fail(f"Not imported: {exc}") from None
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

    database = _ready_database()
    try:
        with database.transaction() as db:
            session = _session(db, code)
            remove_from_roster(db, session=session, nip=nip, reason=reason, actor="cli",
                               now=_now())
    except SessionError as exc:
        raise fail(f"Not removed: {exc}") from None
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

    database = _ready_database()
    try:
        with database.transaction() as db:
            attempt = db.scalar(
                select(Attempt).join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                .join(Participant, Participant.id == RosterEntry.participant_id)
                .join(TestSession, TestSession.id == Attempt.session_id)
                .where(TestSession.code == session, Participant.nip == nip.strip()))
            if attempt is None:
                raise fail(f"No attempt of NIP {nip} in session {session} (not logged in yet?)")
            unlock_seat(db, attempt=attempt, reason=reason, actor="cli", now=_now())
    except ValueError as exc:
        raise fail(f"Not unlocked: {exc}") from None
    typer.echo(f"Unlocked: NIP {nip} may log in on another computer")


# -- scoring: standards, results, kinerja --------------------------------------------------------


@standards_cli.command("load-defaults")
def standards_load_defaults() -> None:
    """Add the default required levels (docs/domain.md) that are missing; never overwrites."""
    from app.scoring.standards import load_defaults

    database = _ready_database()
    with database.transaction() as db:
        added = load_defaults(db, actor="cli", now=_now())
    typer.echo(f"Job standards: {added} default row(s) added")


@standards_cli.command("import")
def standards_import(
    path: Annotated[str, typer.Argument(help="CSV with job_key,competency,required_level")],
) -> None:
    """Add or change required levels from a CSV; every bad row is listed by row and column
    and nothing is imported then. Existing results change only with `cact results rescore`."""
    from pathlib import Path

    from app.bank.parsed import ImportFailed
    from app.scoring.imports import import_standards, parse_standards

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = _ready_database()
    try:
        rows = parse_standards(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            counts = import_standards(db, rows=rows, source=file.name, actor="cli", now=_now())
    except ImportFailed as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    typer.echo(f"Job standards: {counts.added} added, {counts.updated} changed, "
               f"{counts.unchanged} unchanged")


@results_cli.command("rescore")
def results_rescore(
    code: Annotated[str, typer.Argument(help="Session code")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log)")] = "",
) -> None:
    """Score every handed-in attempt of the session again (audited) and print a summary."""
    from app.scoring.service import rescore_session

    database = _ready_database()
    try:
        with database.transaction() as db:
            session = _session(db, code)
            summary = rescore_session(db, session=session, actor="cli", now=_now(),
                                      reason=reason)
    except ValueError as exc:  # a bad scoring setting in the session
        raise fail(f"Not rescored: {exc}") from None
    typer.echo(f"Session {code.upper()}: {summary.scored} attempt(s) scored, "
               f"{summary.changed} changed, {summary.without_attempt} never logged in")
    for label, count in sorted(summary.categories.items()):
        typer.echo(f"  {label}: {count}")
    for change in summary.changes:
        typer.echo(f"  attempt {change['attempt']}: total {change['old_total']} -> "
                   f"{change['new_total']}, JPM {change['old_jpm']} -> {change['new_jpm']}")


@results_cli.command("export")
def results_export(
    code: Annotated[str, typer.Argument(help="Session code")],
    out: Annotated[str, typer.Option("--out", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
) -> None:
    """One row per participant: NIP, name, job group, construct scores and levels, JPM,
    category, potensi band, nine-box (xlsx adds a sheet of item responses). Audited."""
    from pathlib import Path

    from app.reports.export import export_results

    if fmt not in ("csv", "xlsx"):
        raise fail(f"--format must be csv or xlsx, not {fmt!r}", 2)
    database = _ready_database()
    with database.transaction() as db:
        session = _session(db, code)
        data, table = export_results(db, session, fmt=fmt, actor="cli", now=_now())
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

    from app.bank.parsed import ImportFailed
    from app.scoring.imports import import_ratings, parse_ratings

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = _ready_database()
    try:
        rows = parse_ratings(file.read_bytes(), source=file.name)
        with database.transaction() as db:
            counts, rescored = import_ratings(db, rows=rows, source=file.name, actor="cli",
                                              now=_now())
    except ImportFailed as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    typer.echo(f"Kinerja ratings: {counts.added} added, {counts.updated} changed, "
               f"{counts.unchanged} unchanged; {rescored} result(s) rescored")


# -- demo, serve --------------------------------------------------------------------------------


@cli.command("demo")
def demo() -> None:
    """Load the demo: accounts, a sample bank and blueprint, an open session DEMO with 36
    participants. Safe to run again: nothing is added twice."""
    from app.demo import load_demo

    database = _ready_database()
    settings = get_settings()
    with database.transaction() as db:
        report = load_demo(db, settings=settings, now=_now())
    typer.echo(report.describe())


@cli.command("serve")
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for the LAN)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL for more than 1)")] = 1,
) -> None:
    """Serve the app, production style: no reload, N worker processes."""
    import uvicorn

    settings = get_settings()
    # Checks (or, for an empty database, creates) the key once, before workers start. An old
    # schema is EX_CONFIG here too: the unit does not migrate, so restarting cannot fix it.
    database = _ready_database(older_code=EX_CONFIG)
    database.dispose()
    # Workers stop when this process dies, even by kill -9 (app/ops/pdeathsig.py).
    os.environ[PARENT_PID_ENV] = str(os.getpid())
    if workers > 1 and settings.is_sqlite:
        typer.secho(
            "Note: several workers on SQLite share one write lock; PostgreSQL scales further.",
            fg=typer.colors.YELLOW, err=True,
        )
    # Workers count metrics in shared files; set up before they start (app/ops/metrics.py).
    from app.ops.metrics import prepare_for_workers

    prepare_for_workers(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        log_level="info",
        # An idle keep-alive connection that the server closes just as a client reuses it
        # fails that request (the load bench saw it at uvicorn's 5 s, which is also httpx's
        # idle expiry). Keeping idle connections longer than clients and nginx's upstream
        # pool (60 s) do lets the client side close first.
        timeout_keep_alive=75,
        # Proctors' live streams never end by themselves: a restart waits for them at most
        # this long (their pages reconnect on their own to the new process).
        timeout_graceful_shutdown=5,
    )


# -- audit --------------------------------------------------------------------------------------


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

    database = _ready_database()
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

    database = _ready_database()
    with database.transaction(write=False) as db:
        rows = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count)))
    for e in reversed(rows):
        typer.echo(f"{e.id}\t{e.at.isoformat()}\t{e.actor}\t{e.action}\t{e.target}\t{e.reason}")


# Operations commands (config, backup, restore, tls) live in app/ops and add themselves to `cli`.
import app.ops.commands  # noqa: E402,F401


def main() -> None:
    """Entry point of `cact`: configuration errors a restart cannot fix (bad settings, a
    missing, unreadable or wrong secret key) exit 78 (EX_CONFIG) with one message."""
    try:
        cli()
    except SettingsError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        sys.exit(EX_CONFIG)
    except OperationalError as exc:
        typer.secho(f"Database error: {exc.orig}. Check CACT_DATABASE_URL and that the database "
                    "server is running.", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    # `python -m app.cli` runs this file as __main__, a second copy of the module: app/ops adds
    # its commands to app.cli's `cli`, not to this one, so run the imported module's main.
    from app.cli import main as _main

    _main()
