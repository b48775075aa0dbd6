"""Read and write :class:`ServerState` rows, and the alert line shown to staff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.ops.models import ServerState


@dataclass(frozen=True)
class Alert:
    """One line on the proctor console and the admin dashboard (and a named check of
    /healthz when ``level`` is "error")."""

    level: Literal["error", "warning", "info"]
    code: str  # stable machine name, e.g. "disk_low", "outage", "backup_age"
    text_id: str  # Indonesian, shown first
    text_en: str

    def text(self, lang: str) -> str:
        return self.text_en if lang == "en" else self.text_id


def get_state(db: Session, name: str) -> ServerState | None:
    return db.scalar(select(ServerState).where(ServerState.name == name))


def get_value(db: Session, name: str, default: Any = None) -> Any:
    row = get_state(db, name)
    return default if row is None else row.value


def set_value(db: Session, name: str, value: Any, *, now: datetime) -> None:
    """Insert or replace the row ``name`` (one statement: safe with several workers)."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ServerState).values(name=name, value=value, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[ServerState.name],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    )
    db.execute(statement)
