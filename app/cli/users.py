"""`cact user`: admin and proctor accounts."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from app.cli.common import fail, now, ready_database, refusals
from app.settings import get_settings

user_cli = typer.Typer(help="Admin and proctor accounts.", no_args_is_help=True)


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
    database = ready_database()
    hasher = settings_hasher(settings)
    with refusals("Not created: ", service.AccountError), database.transaction() as db:
        user = service.create_user(db, hasher=hasher, username=username, password=password,
                                   role=Role(role), full_name=full_name, actor="cli",
                                   now=now())
        name = user.username
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
    database = ready_database()
    hasher = settings_hasher(settings)
    with refusals("Not changed: ", service.AccountError), database.transaction() as db:
        user = db.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            raise fail(f"No user {username!r}")
        service.set_password(db, hasher=hasher, user=user, password=password, actor="cli",
                             now=now())
    typer.echo(f"Password of {username} changed")


@user_cli.command("list")
def user_list() -> None:
    """List accounts."""
    from sqlalchemy import select

    from app.auth.models import User

    database = ready_database()
    with database.transaction(write=False) as db:
        for user in db.scalars(select(User).order_by(User.username)):
            state = "active" if user.is_active else "disabled"
            typer.echo(f"{user.username}\t{user.role.value}\t{state}\t{user.full_name}")
