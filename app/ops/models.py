"""Small named facts the server keeps about itself (key fingerprint, heartbeat, last backup,
last outage): one row per name, a JSON value, the time it was written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime


class ServerState(Base):
    __tablename__ = "server_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
