"""Backups (to be built)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from app.ops.state import Alert
from app.settings import Settings


async def auto_backup_loop(app: FastAPI) -> None:
    return None


def last_backup(db: Session) -> dict[str, Any] | None:
    return None


def alerts(db: Session, *, settings: Settings, now: datetime) -> list[Alert]:
    return []
