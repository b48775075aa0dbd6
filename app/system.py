"""Deployment endpoints: health check, the landing page, and the API documentation page served
with vendored Swagger UI (no CDN, no inline script)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.auth.deps import OptionalStaff
from app.auth.models import Role
from app.web import redirect, render, templates

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


@router.get("/", include_in_schema=False)
def home(request: Request, user: OptionalStaff) -> Response:
    if user is not None:
        return redirect(request, "/admin" if user.role == Role.admin else "/proctor")
    return render(request, "home.html")


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html", {"openapi_url": request.app.openapi_url})
