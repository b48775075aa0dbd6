"""create_app(): settings, database, routers, static files, templates, middleware, errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, dashboard, http_limits, system
from app.analysis import routes as analysis_routes
from app.assembly import routes as assembly_routes
from app.auth import gate as login_gate
from app.auth import routes as auth_routes
from app.auth.deps import Forbidden, LoginRequired, csrf_protect
from app.auth.security import settings_hasher
from app.bank import routes as bank_routes
from app.clock import Clock, SystemClock
from app.db import Database
from app.delivery import api as taker_api
from app.delivery import taker_routes
from app.delivery.attempts import TakerError
from app.delivery.batching import SaveBatcher
from app.delivery.deps import TakerLoginRequired
from app.ops import lifecycle as ops_lifecycle
from app.ops import metrics as ops_metrics
from app.ops import pdeathsig
from app.proctoring import routes as proctor_routes
from app.programmes import map_routes, people_routes, talent_routes
from app.programmes import routes as programme_routes
from app.reports import routes as report_routes
from app.scoring import routes as scoring_routes
from app.scoring import standards_routes
from app.sessions import routes as session_admin_routes
from app.settings import Settings, get_settings
from app.web import (
    STATIC_DIR,
    TAKER_JSON_PREFIXES,
    CSRFError,
    SecurityHeadersMiddleware,
    install_filters,
    is_htmx,
    redirect,
    render,
)

logger = logging.getLogger("cact")

# Every router the app serves. Tests walk this list to check each route's access rule, so a
# route can only be added through it.
ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    auth_routes.router,
    auth_routes.admin_router,
    dashboard.router,
    bank_routes.router,
    assembly_routes.router,
    session_admin_routes.router,
    taker_api.router,
    taker_routes.router,
    scoring_routes.router,
    proctor_routes.router,
    proctor_routes.api,
    analysis_routes.router,
    report_routes.router,
    programme_routes.router,
    talent_routes.router,
    map_routes.router,
    people_routes.router,
    standards_routes.router,
)


def api_routes() -> list[APIRoute]:
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz",)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "authentication required"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, f"/login?next={target}" if request.method == "GET" else "/login")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "forbidden for this role"}, status_code=403)
        return render(request, "errors/error.html", status_code=403,
                      title_key="error.forbidden_title", message_key="error.forbidden")

    @app.exception_handler(TakerError)
    async def _taker(request: Request, exc: TakerError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        if _wants_json(request) or request.url.path.startswith(TAKER_JSON_PREFIXES):
            return JSONResponse({"detail": exc.detail, "code": exc.key},
                                status_code=exc.status, headers=headers)
        return render(request, "errors/error.html", status_code=exc.status, headers=headers,
                      title_key="taker.error_title", message_key=exc.key)

    @app.exception_handler(TakerLoginRequired)
    async def _taker_login(request: Request, _exc: TakerLoginRequired) -> Response:
        return redirect(request, "/")

    @app.exception_handler(CSRFError)
    async def _csrf(request: Request, _exc: CSRFError) -> Response:
        return render(request, "errors/error.html", status_code=403,
                      title_key="error.csrf_title", message_key="error.csrf")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request) or is_htmx(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        key = "error.not_found" if exc.status_code == 404 else "error.generic"
        return render(request, "errors/error.html", status_code=exc.status_code,
                      title_key=key + "_title", message_key=key)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))},
                                status_code=422)
        return render(request, "errors/error.html", status_code=422,
                      title_key="error.invalid_title", message_key="error.invalid")


def _json_safe(value: Any) -> Any:
    """Validation errors echo the refused input; a JSON body of 1e999 or NaN parses to a float
    that JSON cannot carry, and answering the 422 then failed with a 500 (security review #13).
    Non-finite floats are echoed as their text instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _sweep_once(app: FastAPI) -> int:
    from app.delivery.timing import any_due, sweep

    now = app.state.clock.now()
    with app.state.db.transaction(write=False) as session:
        if not any_due(session, now=now):
            return 0
    with app.state.db.transaction() as session:
        return sweep(session, now=now)


def score_pending_now(app: FastAPI, *, yield_to_takers: bool = False) -> int:
    """Score handed-in attempts that have no result yet, a few per transaction.

    ``yield_to_takers`` (the sweeper): while takers are saving or handing in, only one such
    transaction per run; the rest follows in later runs, or at once when they are quiet. At
    the end of a session 5,000 hand-ins arrive within seconds, and scoring them at full pace
    at the same time took the server from the takers still waiting for "terkumpul"; nothing
    is waiting on the results that soon (a session's close scores what is left itself)."""
    from app.scoring.service import pending_attempts, score_pending

    total = 0
    while True:
        if total and yield_to_takers and app.state.save_batcher.busy():
            return total
        with app.state.db.transaction(write=False) as session:
            if not pending_attempts(session, limit=1):
                return total
        with app.state.db.transaction() as session:
            done = score_pending(session, now=app.state.clock.now())
        if not done:
            return total  # only attempts whose scoring fails are left; next run retries
        total += done


async def _sweeper(app: FastAPI) -> None:
    """Closes attempts whose time ran out even when no browser asks, then scores handed-in
    attempts that have no result yet (every worker runs one; the updates are idempotent and
    workers skip attempts another is scoring, so several workers do no harm)."""
    while True:
        await asyncio.sleep(app.state.settings.sweep_interval_s)
        if not getattr(app.state, "outage_checked", True):
            continue  # an outage not yet credited: closing attempts for time would be wrong
        try:
            closed = await run_in_threadpool(_sweep_once, app)
            if closed:
                logger.info("sweeper closed %d attempt(s)", closed)
            scored = await run_in_threadpool(
                functools.partial(score_pending_now, app, yield_to_takers=True))
            if scored:
                logger.info("sweeper scored %d attempt(s)", scored)
        except Exception:  # a busy or unreachable database must not kill it
            logger.exception("sweeper run failed; trying again")


def _checked_secret(settings: Settings, db: Database, *, now) -> str:
    """The secret key, refused (SettingsError) when it is not the database's key.

    An unreachable database must not keep the app from starting (/healthz says what is wrong
    and checks the key again once the database answers), so then the configured key is used
    unchecked; it is never generated then.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from app.ops import keycheck

    try:
        return keycheck.ensure(db, settings, now=now)
    except SQLAlchemyError as exc:
        logger.warning("secret key not checked against the database (%s)", type(exc).__name__)
        return settings.resolved_secret()


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    db = database or Database.for_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The thread holding the SQLite write slot must get the GIL back quickly after each
        # database call; with the default 5 ms switch interval it queued behind the event
        # loop and the other threads, and every save waited on that convoy.
        sys.setswitchinterval(0.0005)
        # An outage is credited to the takers before the sweeper may close anything for time.
        await ops_lifecycle.startup(app)
        tasks = [asyncio.create_task(_sweeper(app)),
                 asyncio.create_task(login_gate.refusal_audit_loop(app)),
                 *(asyncio.create_task(loop) for loop in ops_lifecycle.background(app))]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # the last minute of throttled logins
            await login_gate.flush_refusals(app, everything=True)
        await app.state.save_batcher.close()
        if database is None:
            db.dispose()

    app = FastAPI(
        title="CACT server",
        version=__version__,
        description="Computer-assisted competency tests for civil servants.",
        docs_url=None,  # served by app.system with vendored assets (the lab has no internet)
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(csrf_protect)],
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    # A worker of `cact serve` stops when its parent dies (kill -9 must not leave the port held).
    pdeathsig.die_with_parent()
    app.state.secret = _checked_secret(settings, db, now=app.state.clock.now())
    app.state.db = db
    app.state.save_batcher = SaveBatcher(db)
    login_gate.install(app)
    app.state.password_hasher = settings_hasher(settings)

    install_filters(settings.timezone)
    http_limits.install(app)  # inside the security headers: a 413 gets them too
    app.add_middleware(
        SecurityHeadersMiddleware,
        secure_cookie=lambda scope: settings.cookie_secure == "always"
        or (settings.cookie_secure == "auto" and scope.get("scheme") == "https"),
    )
    ops_metrics.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _install_error_handlers(app)
    return app
