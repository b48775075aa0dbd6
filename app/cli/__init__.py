"""The ``cact`` command: database, accounts, banks, sessions, programmes, results, demo data,
server, audit log, backups, configuration and TLS.

One module per command group; what they share (the checked database, the session a command
names, how refusals and an import's problems are printed) is in :mod:`app.cli.common`.
"""

from __future__ import annotations

import sys

import typer
from sqlalchemy.exc import OperationalError

from app.cli import (
    audit,
    backup,
    bank,
    blueprints,
    config,
    db,
    programmes,
    scoring,
    serve,
    sessions,
    talent,
    tls,
    users,
)
from app.settings import EX_CONFIG, SettingsError

cli = typer.Typer(
    help="CACT server: computer-assisted competency tests. Settings come from CACT_* variables "
    "and the file CACT_CONFIG, else /etc/cact/cact.env, else ./.env (`cact config show`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.command("demo")(serve.demo)
cli.command("serve")(serve.serve)
cli.command("backup")(backup.backup_command)
cli.command("restore")(backup.restore_command)
cli.add_typer(db.db_cli, name="db")
cli.add_typer(users.user_cli, name="user")
cli.add_typer(bank.bank_cli, name="bank")
cli.add_typer(blueprints.blueprint_cli, name="blueprint")
cli.add_typer(sessions.session_cli, name="session")
cli.add_typer(programmes.programme_cli, name="programme")
cli.add_typer(talent.talent_cli, name="talent")
cli.add_typer(sessions.roster_cli, name="roster")
cli.add_typer(sessions.attempt_cli, name="attempt")
cli.add_typer(audit.audit_cli, name="audit")
cli.add_typer(scoring.standards_cli, name="standards")
cli.add_typer(scoring.results_cli, name="results")
cli.add_typer(scoring.performance_cli, name="performance")
cli.add_typer(config.config_cli, name="config")
cli.add_typer(tls.tls_cli, name="tls")


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
