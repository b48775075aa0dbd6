"""Request body limits and the caching / transport headers of every response.

Both are plain ASGI middlewares (registered in app/main.py), so they work the same behind nginx
and when `cact serve` faces the LAN directly with no proxy and no cap of its own.

Body limits (security review #13, finding 7). FastAPI parses a form or JSON body before any
route dependency runs, so before a login or role check: an anonymous client could make the
server read, and for multipart spool to disk, any amount. The limit is therefore enforced here,
while the body is read: a declared Content-Length above the limit is refused before one byte of
the body is read (no ``100 Continue`` either), and a chunked body is counted as it arrives and
refused the moment it passes the limit. The refusal is a 413 with ``Connection: close``, so the
server stops reading that connection instead of draining the rest.

=====================================  ===========  =========================================
requests                               limit        largest legitimate body
=====================================  ===========  =========================================
taker pages and API, proctor API,      64 KiB       a save is an option id or a short list of
/login, /logout, /lang, and every                   them (~100 bytes); a login ~300 bytes
request without a staff session cookie
other staff forms (with the cookie)    1 MiB        selecting every seat of a 5,000-row roster
                                                    in the console (~70 KB); blueprint editor
bank upload, logged-in admin only      60 MiB       the 50 MB bank limit (app/bank/archive.py)
                                                    plus room for its own message; nginx: 60m
roster, blueprint, standards and       4 MiB        their own limits are 1-2 MB, with room for
kinerja uploads, logged-in admin only               the route's own message
=====================================  ===========  =========================================

An upload limit applies only once the session cookie was checked to belong to a logged-in
admin (the same lookup the route's own dependency then reuses); anyone else keeps the ordinary
limit (64 KiB, or 1 MiB with some session cookie) and is refused before the upload is read.
Closing without reading means a browser still sending may report a reset connection instead of
showing the 413 page; only a sender over the limit ever sees either.

Headers (finding 10). Every response outside /static/ that does not choose its own caching gets
``Cache-Control: no-store``: taker pages, pages showing keys, results or tokens, and every
export must not stay in the browser's or a proxy's cache on a shared lab PC. /static/ (vendored
htmx, css, js) keeps its caching. ``Strict-Transport-Security`` is sent when the request came
over HTTPS, as uvicorn's proxy_headers (trusting only CACT_FORWARDED_ALLOW_IPS) left the scope's
scheme; a plain-HTTP answer never carries it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.bank.archive import MAX_UPLOAD_BYTES
from app.web import SESSION_COOKIE, TAKER_JSON_PREFIXES

logger = logging.getLogger("cact")

KIB = 1024
MIB = 1024 * KIB

SMALL_LIMIT = 64 * KIB
STAFF_FORM_LIMIT = 1 * MIB
BANK_UPLOAD_LIMIT = MAX_UPLOAD_BYTES + 10 * MIB  # 60 MiB, nginx's client_max_body_size 60m
FILE_UPLOAD_LIMIT = 4 * MIB

# Routes with an UploadFile parameter (all admin-only); tests/integration/test_http_limits.py
# checks that every such route is listed here.
UPLOAD_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"/admin/banks/upload"), BANK_UPLOAD_LIMIT),
    (re.compile(r"/admin/sessions/[^/]+/roster"), FILE_UPLOAD_LIMIT),
    (re.compile(r"/admin/sessions/[^/]+/talent-map/kinerja"), FILE_UPLOAD_LIMIT),
    (re.compile(r"/admin/programmes/[^/]+/talent-map/kinerja"), FILE_UPLOAD_LIMIT),
    (re.compile(r"/admin/blueprints/upload"), FILE_UPLOAD_LIMIT),
    (re.compile(r"/admin/standards/import"), FILE_UPLOAD_LIMIT),
)
# Reached by test takers or anonymously: never more than the small limit.
SMALL_PREFIXES = ("/api/", "/ujian", "/login", "/logout", "/lang")

HSTS = (b"strict-transport-security", b"max-age=31536000")
NO_STORE = (b"cache-control", b"no-store")
CACHED_PREFIXES = ("/static/",)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body passes its limit. An HTTPException, so FastAPI's
    body parsing passes it on unchanged; the middleware answers 413 whatever the app does."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _has_staff_cookie(scope: Scope) -> bool:
    cookie = (_header(scope, b"cookie") or b"").decode("latin-1")
    return any(part.strip().startswith(f"{SESSION_COOKIE}=") for part in cookie.split(";"))


def base_limit(path: str, scope: Scope) -> int:
    """The limit of a request before any upload allowance."""
    if path == "/" or path.startswith(SMALL_PREFIXES) or not _has_staff_cookie(scope):
        return SMALL_LIMIT
    return STAFF_FORM_LIMIT


def upload_limit(path: str) -> int | None:
    for pattern, limit in UPLOAD_LIMITS:
        if pattern.fullmatch(path):
            return limit
    return None


async def _is_admin(scope: Scope) -> bool:
    """The same check as the routes' AdminUser, made before the body is read. load_staff keeps
    the account on the request's state, so the route does not look it up again."""
    from app.auth.deps import load_staff
    from app.auth.models import Role

    request = Request(scope)
    try:
        user = await load_staff(request, request.app.state.clock)
    except Exception:  # an unreachable database must not open the large limit
        logger.warning("upload refused: the staff session could not be checked", exc_info=True)
        return False
    return user is not None and user.role == Role.admin


def _wants_json(path: str) -> bool:
    return path.startswith(("/api/", *TAKER_JSON_PREFIXES))


def _too_large_response(scope: Scope, limit: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    path = scope.get("path", "")
    headers = [(b"connection", b"close")]
    if _wants_json(path):
        body = json.dumps({"detail": "request body too large", "limit_bytes": limit}).encode()
        return 413, [*headers, (b"content-type", b"application/json")], body
    try:
        from app.web import render

        page = render(Request(scope), "errors/error.html", status_code=413,
                      title_key="error.too_large_title", message_key="error.too_large")
        body = bytes(page.body)
    except Exception:  # the refusal must go out even if the page cannot render
        logger.exception("the 413 page could not be rendered")
        body = (b"<!doctype html><title>413</title><p>Data yang dikirim terlalu besar.</p>"
                b"<p>The request is too large.</p>")
    return 413, [*headers, (b"content-type", b"text/html; charset=utf-8")], body


async def _send_too_large(scope: Scope, send: Send, limit: int) -> None:
    status, headers, body = _too_large_response(scope, limit)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimitMiddleware:
    """Refuses request bodies above their limit (the table in this module's docstring) while
    reading them, with a 413 and without reading the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        declared_raw = _header(scope, b"content-length")
        declared = int(declared_raw) if declared_raw and declared_raw.isdigit() else None
        limit = base_limit(path, scope)
        larger = upload_limit(path)
        if larger is not None and (declared is None or declared > limit) \
                and await _is_admin(scope):
            limit = larger
        if declared is not None and declared > limit:
            await _send_too_large(scope, send, limit)
            return

        received = 0
        overflow = False
        refused = False  # our 413 went out: the app's own answer is dropped
        started = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            if overflow:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused, started
            if refused:
                return
            if message["type"] == "http.response.start":
                if overflow:
                    refused = True
                    await _send_too_large(scope, send, limit)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not overflow or started:
                raise
            if not refused:
                refused = True
                await _send_too_large(scope, send, limit)


class ResponseHeadersMiddleware:
    """``Cache-Control: no-store`` on every response outside /static/ that sets no caching of
    its own, and HSTS on every response to a request that came over HTTPS."""

    def __init__(self, app: ASGIApp, *, is_https: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.is_https = is_https or (lambda scope: scope.get("scheme") == "https")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope.get("path", "").startswith(CACHED_PREFIXES)
        https = self.is_https(scope)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if not cacheable and b"cache-control" not in present:
                    headers.append(NO_STORE)
                if https and HSTS[0] not in present:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def install(app) -> None:
    """Register both middlewares. Called before the security headers middleware is added, so
    a 413 answered here still gets those headers and the anonymous cookie."""
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(ResponseHeadersMiddleware)
