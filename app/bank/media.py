"""A bank's media files (images in items) as HTTP responses: one place for their security
headers, shared by the staff preview (``app.bank.routes``) and the taker's exam page
(``app.delivery.taker_routes``), so neither domain imports the other's routes."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.bank.models import BankMedia


def media_response(db: Session, version_id: int, name: str) -> Response:
    media = db.scalar(select(BankMedia).where(BankMedia.bank_version_id == version_id,
                                              BankMedia.name == name))
    if media is None:
        raise HTTPException(status_code=404)
    # An SVG opened directly must not run anything, whatever was missed on import.
    return Response(media.data, media_type=media.mime_type, headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "private, max-age=3600",
        "ETag": f'"{media.sha256}"',
    })
