"""`cact talent`: talent management from a programme's results."""

from __future__ import annotations

import typer

talent_cli = typer.Typer(help="Talent management: key positions and their candidates.",
                         no_args_is_help=True)
