"""What the ``cact`` commands share: the database they open (schema and secret key checked),
the session a command names, the clock, and how a refusal or an import's problems are printed.

Each command runs in one transaction (app.db.Database.transaction): it changes everything it
says it changes, or nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from app.settings import EX_CONFIG, get_settings

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

    from app.db import Database
    from app.sessions.models import TestSession


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


def warn_if_root(settings) -> None:
    global _warned_root
    if not _warned_root:
        _warned_root = True
        message = root_warning(settings.data_dir)
        if message:
            typer.secho(message, fg=typer.colors.YELLOW, err=True)


def open_database() -> Database:
    """The database of the settings, unchecked (`cact db` works on any schema)."""
    from app.db import Database

    settings = get_settings()
    warn_if_root(settings)
    return Database.for_settings(settings)


def newer_database_message(have: str | None) -> str:
    return (f"Database dibuat oleh versi CACT yang lebih baru / the database was made by a newer "
            f"CACT version (revision {have}); install that version instead (do not downgrade "
            "the database).")


def schema_state(database) -> tuple[bool, str | None, str | None, bool]:
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
    current, have, head, known = schema_state(database)
    if not known:
        raise fail(newer_database_message(have), EX_CONFIG)
    if not current:
        raise fail(
            f"Database schema is at {have or 'nothing'}, the code needs {head}. "
            "Run `cact db upgrade` first (back up the database before upgrading production).",
            older_code,
        )


def ready_database(*, older_code: int = 1) -> Database:
    """The database, refusing a schema that is not the code's and a secret key that is not the
    database's (app/ops/keycheck.py; exit 78 naming the key file and the fix). ``older_code``
    is the exit code for a schema older than the code."""
    global _checked_secret
    from app.ops import keycheck

    database = open_database()
    _require_current_schema(database, older_code=older_code)
    _checked_secret = keycheck.ensure(database, get_settings(), now=now())
    return database


def secret_key() -> str:
    """The secret key, checked against the database by :func:`ready_database`."""
    if _checked_secret is None:
        ready_database().dispose()
    if _checked_secret is None:  # ready_database() sets it or exits
        raise RuntimeError("the secret key was not checked")
    return _checked_secret


def find_session(db: Session, code: str) -> TestSession:
    """The session with this code, or exit 1 saying there is none."""
    from app.sessions.service import session_by_code

    session = session_by_code(db, code)
    if session is None:
        raise fail(f"No session {code!r}")
    return session


def now() -> datetime:
    from app.clock import SystemClock

    return SystemClock().now()


def safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def problem_line(problem) -> str:
    """``str(problem)``, with the message in Indonesian when the server speaks Indonesian."""
    if get_settings().language != "id":
        return str(problem)
    return str(dataclasses.replace(problem, message=problem.text("id")))


def print_problems(problems) -> None:
    typer.secho(f"Nothing was imported: {len(problems)} problem(s).", fg=typer.colors.RED,
                err=True)
    for problem in problems:
        typer.echo(f"  {problem_line(problem)}", err=True)


@contextmanager
def refusals(refused: str = "", *errors: type[Exception]) -> Iterator[None]:
    """Around a command's work: an import that failed lists every problem, one of ``errors``
    prints ``refused`` and its message; both exit 1 (the transaction inside rolled back)."""
    from app.bank.parsed import ImportFailed

    try:
        yield
    except ImportFailed as exc:
        print_problems(exc.problems)
        raise typer.Exit(1) from None
    except errors as exc:
        raise fail(f"{refused}{exc}") from None


@contextmanager
def session_transaction(code: str, refused: str = "",
                        *errors: type[Exception]) -> Iterator[tuple[Session, TestSession]]:
    """A command's work on one session: the ready database, one transaction, the session with
    ``code`` (exit 1 "No session ..." without one), and :func:`refusals` around them."""
    database = ready_database()
    with refusals(refused, *errors), database.transaction() as db:
        yield db, find_session(db, code)
