"""`cact blueprint`: test blueprints (import, list)."""

from __future__ import annotations

import typer

from app.cli.common import fail, now, ready_database, refusals

blueprint_cli = typer.Typer(help="Test blueprints: import, list.", no_args_is_help=True)


@blueprint_cli.command("import")
def blueprint_import(path: str) -> None:
    """Import (create or replace) a blueprint from a cact-blueprint/1 YAML file."""
    from pathlib import Path

    from app.assembly.service import import_blueprint

    file = Path(path)
    if not file.is_file():
        raise fail(f"{path}: no such file")
    database = ready_database()
    with refusals(), database.transaction() as db:
        blueprint = import_blueprint(db, file.read_text(encoding="utf-8"), source=file.name,
                                     actor="cli", now=now())
        summary = f"{blueprint.code}: {len(blueprint.spec['sections'])} sections"
    typer.echo(f"Blueprint {summary}")


@blueprint_cli.command("list")
def blueprint_list() -> None:
    """Blueprints with their sections and item counts."""
    from sqlalchemy import select

    from app.assembly.models import Blueprint

    database = ready_database()
    with database.transaction(write=False) as db:
        for bp in db.scalars(select(Blueprint).order_by(Blueprint.code)):
            sections = bp.spec.get("sections", [])
            items = sum(p["count"] for s in sections for p in s["picks"])
            typer.echo(f"{bp.code}\t{bp.name}\t{len(sections)} sections\t{items} items")
