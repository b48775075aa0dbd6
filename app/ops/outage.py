"""Outage recovery (to be built)."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session

from app.ops.state import Alert


def on_start(app: FastAPI) -> None:
    return None


async def heartbeat_loop(app: FastAPI) -> None:
    return None


def alerts(db: Session, *, now: datetime, session_id: int | None = None) -> list[Alert]:
    return []


def clock_problem(db: Session, *, now: datetime) -> str | None:
    return None
