"""What the admin and proctor pages of one session share: finding it by its code in the URL."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy.orm import Session

from app.sessions.models import TestSession
from app.sessions.service import session_by_code


def session_or_404(db: Session, code: str) -> TestSession:
    """The session with this code, or 404 (admin pages; the console checks assignment too)."""
    session = session_by_code(db, code)
    if session is None:
        raise HTTPException(status_code=404)
    return session
