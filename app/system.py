"""Deployment endpoints: health check and the API documentation page served
with vendored Swagger UI (no CDN, no inline script)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.web import templates

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="Liveness and database check")
def healthz(request: Request) -> JSONResponse:
    """200 when the app answers and its database accepts a query; 503 otherwise."""
    try:
        request.app.state.db.ping()
    except SQLAlchemyError as exc:
        return JSONResponse(
            {"status": "error", "database": "unreachable", "error": type(exc).__name__},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "version": __version__})


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html", {"openapi_url": request.app.openapi_url})
