"""Prometheus metrics: requests and answer saves with latency histograms, errors by status
code, and gauges read from the database when scraped (live attempts, open sessions, disk free,
age of the last backup).

With several workers (``cact serve --workers N``) each worker counts in its own files under
``PROMETHEUS_MULTIPROC_DIR`` and a scrape, answered by whichever worker nginx picks, sums them
all (prometheus-client's multiprocess mode). ``prepare_for_workers`` sets that directory up
before the workers start; prometheus-client reads the variable when it is first imported, so
this module imports it lazily. Without the variable (tests, ``create_app`` in a script) each
app counts in a registry of its own.

The per-request cost is a clock read and two or three counter updates: no database work, and
the labels are the route's template (``/ujian/jawaban/{item_id}``), never the raw path, so ids
and tokens never become label values.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

logger = logging.getLogger("cact.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The answer saves of the taker page and of the JSON API (app/delivery/taker_routes.py, api.py).
SAVE_ROUTES = frozenset({("PUT", "/ujian/jawaban/{item_id}"),
                         ("PUT", "/api/v1/taker/answers/{item_id}")})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Saves take milliseconds when all is well and seconds when the write lock queues: the buckets
# resolve both ends (the default buckets start at 5 ms).
SAVE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory when metrics are shared between workers, else None."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and Path(path).is_dir() else None


def prepare_for_workers(settings: Settings) -> Path:
    """Make ``data_dir/metrics`` empty and point ``PROMETHEUS_MULTIPROC_DIR`` at it, before
    the workers start (they inherit the variable). Counts from an earlier run are wiped: a
    counter restarting at zero is what Prometheus expects after a restart."""
    folder = (Path(settings.data_dir) / "metrics").resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.db"):
            leftover.unlink(missing_ok=True)
    except OSError as exc:
        # Metrics must never keep the exam server from starting: count in a fresh folder.
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="cact-metrics-"))
        logger.warning("metrics folder in the data directory not usable (%s); using %s",
                       exc, folder)
    os.environ[MULTIPROC_ENV] = str(folder)
    # With one worker uvicorn serves in this very process: if prometheus-client was imported
    # already it chose single-process values, so make it choose again.
    import sys

    if "prometheus_client.values" in sys.modules:
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return folder


class Metrics:
    """The metric objects of one app (or, in multiprocess mode, of the whole process)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter("cact_http_requests", "HTTP requests answered, by route "
                                "template and status code", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("cact_http_request_duration_seconds", "Time to the response's "
                                 "first byte, by route template", ["method", "route"],
                                 buckets=REQUEST_BUCKETS, registry=registry)
        self.errors = Counter("cact_http_errors", "Responses with status 400 or more, by code",
                              ["status", "route"], registry=registry)
        self.saves = Histogram("cact_answer_save_duration_seconds", "Time to answer an answer "
                               "save: ok (durable), refused (4xx) or error (5xx)", ["outcome"],
                               buckets=SAVE_BUCKETS, registry=registry)
        # labels() takes a lock and builds a tuple each time: keep the children.
        self._children: dict[tuple, tuple] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request (called once per request, at its response start)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            save = None
            if (method, route) in SAVE_ROUTES:
                outcome = "ok" if status < 400 else "refused" if status < 500 else "error"
                save = self.saves.labels(outcome)
            children = (self.requests.labels(method, route, code),
                        self.latency.labels(method, route),
                        self.errors.labels(code, route) if status >= 400 else None, save)
            self._children[key] = children
        count, latency, error, save = children
        count.inc()
        latency.observe(seconds)
        if error is not None:
            error.inc()
        if save is not None:
            save.observe(seconds)


_shared: Metrics | None = None


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return "<unmatched>"  # a 404: its raw path could be anything


class MetricsMiddleware:
    """Pure ASGI (BaseHTTPMiddleware would buffer the proctors' event streams): times each
    request to its response start, which for a stream is when it opened."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        done = False

        def record(status: int) -> None:
            nonlocal done
            done = True
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            try:
                self.metrics.observe(method, _route_label(scope), status,
                                     time.perf_counter() - started)
            except Exception:  # counting must never fail a request
                logger.exception("recording a request's metrics failed")

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not done:
                record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except BaseException:
            if not done:
                record(500)  # the error middleware outside turns it into a 500 page
            raise


def install(app: FastAPI) -> None:
    """Count every request of ``app``; the registry to scrape is kept on ``app.state``."""
    global _shared
    from prometheus_client import CollectorRegistry, disable_created_metrics

    disable_created_metrics()  # "*_created" series double the output and nobody graphs them

    if multiprocess_dir():
        if _shared is None:
            _shared = Metrics(registry=None)  # values live in this worker's files
            atexit.register(_mark_dead)
        metrics, registry = _shared, None
    else:
        registry = CollectorRegistry()
        metrics = Metrics(registry=registry)
        registry.register(DatabaseCollector(app))
    app.state.metrics = metrics
    app.state.metrics_registry = registry
    app.add_middleware(MetricsMiddleware, metrics=metrics)


def _mark_dead() -> None:
    from prometheus_client import multiprocess

    folder = multiprocess_dir()
    if folder:
        multiprocess.mark_process_dead(os.getpid(), folder)


def exposition(app: FastAPI) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type. In multiprocess mode every worker's
    files are summed; the database gauges are read now, by the worker answering."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = app.state.metrics_registry
    if registry is None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(DatabaseCollector(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class DatabaseCollector:
    """Gauges read from the database and the disk at scrape time (one short read
    transaction), so every worker reports the same truth."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def describe(self) -> Iterable[Any]:
        return []  # names are known only when collected; the registry needs none up front

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from app.ops import health

        state = self.app.state
        up = GaugeMetricFamily("cact_database_up", "1 when the scrape could read the database")
        try:
            values = self._read(state)
        except Exception:  # a scrape must answer even when the database cannot
            logger.exception("reading the metrics' database gauges failed")
            up.add_metric([], 0)
            values = {}
        else:
            up.add_metric([], 1)
        yield up
        if "live" in values:
            yield GaugeMetricFamily("cact_live_attempts", "Attempts logged in and not yet "
                                    "handed in (not started, active, paused)", value=values["live"])
            yield GaugeMetricFamily("cact_open_sessions", "Sessions open or paused",
                                    value=values["open"])
        if values.get("backup_age") is not None:
            yield GaugeMetricFamily("cact_last_backup_age_seconds", "Seconds since the last "
                                    "finished backup", value=values["backup_age"])
        free = health.disk_free_bytes(state.settings)
        if free is not None:
            yield GaugeMetricFamily("cact_disk_free_bytes", "Free bytes on the data folder's "
                                    "disk", value=free)

    @staticmethod
    def _read(state: Any) -> dict[str, Any]:
        from sqlalchemy import func, select

        from app.delivery.models import Attempt, AttemptState
        from app.ops import backup
        from app.sessions.models import SessionState, TestSession

        now = state.clock.now()
        with state.db.transaction(write=False) as db:
            live = db.scalar(select(func.count()).select_from(Attempt).where(Attempt.state.in_(
                (AttemptState.not_started, AttemptState.active, AttemptState.paused))))
            open_ = db.scalar(select(func.count()).select_from(TestSession).where(
                TestSession.state.in_((SessionState.open, SessionState.paused))))
            last = backup.last_backup(db)
        age = None
        if last and last.get("at"):
            from datetime import datetime

            at = datetime.fromisoformat(str(last["at"]))
            if at.tzinfo is not None:
                age = max(0.0, (now - at).total_seconds())
        return {"live": live, "open": open_, "backup_age": age}


def allowed_address(host: str | None, allow: str) -> bool:
    """Whether ``host`` (the client address uvicorn saw, after trusted proxy headers) is in
    the comma-separated addresses or networks of ``allow`` ("*" allows every address)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # "::ffff:127.0.0.1" on a dual stack
        address = address.ipv4_mapped
    for entry in (part.strip() for part in allow.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            logger.warning("CACT_METRICS_ALLOW_IPS: %r is not an address or network; ignored",
                           entry)
    return False
