"""`cact config show`: every setting, its value (secrets masked) and where it came from."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from app.cli.common import root_warning, safe_url
from app.settings import (
    SettingsError,
    config_file_path,
    file_values,
    get_settings,
    read_config_file,
    read_secret,
)

config_cli = typer.Typer(help="Configuration: which file, which values, from where.",
                         no_args_is_help=True)


def describe(settings, path: Path | None) -> list[tuple[str, str, str]]:
    """(name, shown value, source) for every setting; source is "environment", the config
    file's path, "default" or, for the key, "generated file ..." / "missing"."""
    from app.ops.keycheck import fingerprint

    env = {key.upper() for key in os.environ}
    in_file = file_values(path, type(settings).model_fields) if path else {}
    rows = []
    for name in type(settings).model_fields:
        key = "CACT_" + name.upper()
        value = getattr(settings, name)
        if key in env:
            source = "environment"
        elif name in in_file:
            source = str(path)
        else:
            source = "default"
        if name == "secret_key":
            if value:
                shown = f"******** (fingerprint {fingerprint(value)})"
            else:
                try:
                    stored = read_secret(settings.secret_file)
                except SettingsError as exc:
                    shown, source = "(unreadable)", str(exc)
                else:
                    if stored is None:
                        shown = "(none yet)"
                        source = (f"missing: {settings.secret_file} (made only for an empty "
                                  "database)")
                    else:
                        shown = f"******** (fingerprint {fingerprint(stored)})"
                        source = f"generated file {settings.secret_file}"
        elif name == "database_url":
            shown = safe_url(value)
            if source == "default":
                source = "default (SQLite in data_dir)"
        else:
            shown = "" if value is None else str(value)
        rows.append((name, shown, source))
    return rows


@config_cli.command("show")
def config_show() -> None:
    """Print the configuration file in use and every setting with its source (the secret key
    and the database password are masked). Run it from any directory: the server reads the
    same."""
    path, reason = config_file_path()
    settings = get_settings()
    typer.echo(f"config file: {path} ({reason})" if path else
               "config file: none (no CACT_CONFIG, /etc/cact/cact.env or ./.env): "
               "environment variables and defaults only")
    for name, shown, source in describe(settings, path):
        typer.echo(f"{name} = {shown}    [{source}]")
    if path:
        known = {"CACT_" + name.upper() for name in type(settings).model_fields} | {"CACT_CONFIG"}
        unknown = sorted(set(read_config_file(path)) - known)
        if unknown:
            typer.secho(f"unknown names in {path} (ignored, check the spelling): "
                        + ", ".join(unknown), fg=typer.colors.YELLOW, err=True)
    message = root_warning(settings.data_dir)
    if message:
        typer.secho(message, fg=typer.colors.YELLOW, err=True)
