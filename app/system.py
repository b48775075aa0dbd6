"""Deployment endpoints: the health check, Prometheus metrics, and the API documentation page
served with vendored Swagger UI (no CDN, no inline script)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app import __version__
from app.auth.deps import Forbidden, LoginRequired, OptionalStaff
from app.auth.models import Role
from app.ops import health, metrics
from app.web import templates

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="Health of the server and its database",
            responses={503: {"description": "A check failed; `failing` names it"}})
def healthz(request: Request) -> JSONResponse:
    """200 ``{"status": "ok", "checks": {...}}`` when the database can be read and written,
    its schema is the code's, the data disk has room, the secret key matches the database and
    the clock is sane; otherwise 503 with ``failing`` naming the checks and each failing
    check's message saying what to do. No login: load balancers and the installer poll it, so
    it carries no secret, key fingerprint or file path."""
    state = request.app.state
    checks = health.run_checks(state.db, settings=state.settings, secret=state.secret,
                               now=state.clock.now())
    status, body = health.report(checks)
    body["version"] = __version__
    return JSONResponse(body, status_code=status)


@router.get("/metrics", tags=["system"], summary="Prometheus metrics (text format)",
            response_class=Response)
def prometheus_metrics(request: Request, user: OptionalStaff) -> Response:
    """Counters and histograms of every worker, plus gauges read now from the database.
    Open to the addresses of CACT_METRICS_ALLOW_IPS (Prometheus on the server itself) and to
    a logged-in admin; anyone else is sent to log in (or refused, if logged in as a proctor)."""
    client = request.client.host if request.client else None
    if not metrics.allowed_address(client, request.app.state.settings.metrics_allow_ips):
        if user is None:
            raise LoginRequired()
        if user.role != Role.admin:
            raise Forbidden()
    body, content_type = metrics.exposition(request.app)
    return Response(body, media_type=content_type)


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html",
                                      {"openapi_url": request.app.openapi_url})
