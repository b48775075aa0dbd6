"""`cact db`: the database schema (upgrade, downgrade, status)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    fail,
    newer_database_message,
    now,
    open_database,
    ready_database,
    safe_url,
    schema_state,
)
from app.settings import EX_CONFIG, get_settings

db_cli = typer.Typer(help="Database schema: upgrade, downgrade, status.", no_args_is_help=True)


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from app import db

    settings = get_settings()
    database = open_database()
    try:
        _current, have, _head, known = schema_state(database)
    finally:
        database.dispose()
    if not known:
        raise fail(newer_database_message(have), EX_CONFIG)
    db.upgrade(settings.database_url, revision)
    typer.echo(f"Database at {revision}: {safe_url(settings.database_url)}")
    if revision == "head":
        # The key belongs with the database: a new, empty database gets its key now, made by
        # whoever migrates it (the installer runs this as the service user), and an existing
        # one is checked against its key (app/ops/keycheck.py).
        ready_database().dispose()


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
    age = (now() - row.updated_at).total_seconds()
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
    database = open_database()
    try:
        _current, have, _head, known = schema_state(database)
        if not known:
            raise fail(newer_database_message(have), EX_CONFIG)
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
                f"Downgrade {safe_url(settings.database_url)} from {have} to {revision}: "
                f"{warning}. Back up first (cact backup). Continue?", abort=True)
        db.downgrade(settings.database_url, revision)
        try:  # recorded when the audit log survives the downgrade (it does unless "base")
            with database.transaction() as session:
                audit.record(session, actor="cli", action="db.downgrade", now=now(),
                             target=revision, data={"from": have})
        except SQLAlchemyError:
            pass
    finally:
        database.dispose()
    typer.echo(f"Database at {revision}")


@db_cli.command("status")
def db_status() -> None:
    """Show the database's revision and whether it matches the code."""
    database = open_database()
    current, have, head, known = schema_state(database)
    typer.echo(f"database: {safe_url(database.url)}\nrevision: {have}\ncode head: {head}")
    if not known:
        raise fail(newer_database_message(have), EX_CONFIG)
    if not current:
        raise typer.Exit(1)


@db_cli.command("revision", hidden=True)
def db_revision(message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """(Developers) autogenerate a migration from the models."""
    from alembic import command

    from app.db import alembic_config

    command.revision(alembic_config(get_settings().database_url), message=message,
                     autogenerate=True)
