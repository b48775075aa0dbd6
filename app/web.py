"""Jinja environment, translations, HTMX helpers (fragment vs full page, HX-Redirect), CSRF and
the security headers every response carries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__, formatting, paths
from app.auth.security import constant_time_equal, keyed_digest, random_token
from app.i18n import LANGUAGES, translate
from app.problem_text import location_text

# The checkout's frontend/ or, in an installed wheel, its packaged copy (app/paths.py).
FRONTEND_DIR = paths.FRONTEND_DIR
TEMPLATES_DIR = FRONTEND_DIR / "templates"
STATIC_DIR = FRONTEND_DIR / "static"
LANG_COOKIE = "cact_lang"
ANON_COOKIE = "cact_anon"
SESSION_COOKIE = "cact_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BEARER_API_PREFIXES = ("/api/v1/taker/",)
# The taker page's own JSON calls (autosave, status): refusals there are JSON, not pages.
TAKER_JSON_PREFIXES = ("/ujian/jawaban", "/ujian/status")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


# -- translations -------------------------------------------------------------------------------


def request_language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else request.app.state.settings.language


# -- CSRF ---------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The token forms and HTMX requests must send back: the session's own token when logged
    in, otherwise one bound (HMAC) to the browser's anonymous cookie."""
    session_token = getattr(request.state, "session_csrf", None)
    if session_token is not None:
        return session_token
    anon = getattr(request.state, "anon_id", "") or request.cookies.get(ANON_COOKIE, "")
    return keyed_digest(request.app.state.secret, "csrf", anon)


class CSRFError(Exception):
    pass


async def check_csrf(request: Request) -> None:
    if request.method not in UNSAFE_METHODS or request.url.path.startswith(
            BEARER_API_PREFIXES):
        # The taker API authenticates with bearer tokens only, never with cookies, so a
        # cross-site page cannot ride on a logged-in browser there. The staff API (proctor
        # console) runs on the staff session cookie and is checked like every form.
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached by Starlette; the endpoint reuses it
            sent = str(form.get(CSRF_FIELD, ""))
    if not sent or not constant_time_equal(sent, csrf_token(request)):
        raise CSRFError()


# -- templates ----------------------------------------------------------------------------------


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["app_version"] = __version__
templates.env.globals["languages"] = LANGUAGES


# The language of the page being rendered, for the filters: a macro imported from another
# template (components/format.html) does not see the page's ``lang``, so template_context
# also sets it here (a template renders in the request's own context).
_render_lang: ContextVar[str] = ContextVar("render_lang", default="id")
_zone: list[ZoneInfo] = [ZoneInfo(formatting.DEFAULT_TIMEZONE)]


def _lang(context: Context) -> str:
    lang = context.get("lang")
    return lang if lang in LANGUAGES else _render_lang.get()


def install_filters(timezone: str) -> None:
    """Dates and times on the pages are in the agency's time zone (CACT_TIMEZONE)."""
    _zone[0] = ZoneInfo(timezone)


# Numbers, percentages and dates as the page's language writes them (app/formatting.py):
#   number(x), number(x, 2), percent(x)   "—" for None, in a table cell
#   x|number                              "" for None and no thousands separator: a form
#                                         field's value the server reads back ("2,5")
#   t|local, t|local_date, t|local_time   "5 Des 2026 08.07", "5 Des 2026", "08.07"
#   t|local("%H:%M:%S")                   a clock a script keeps ticking: its own fixed format


@pass_context
def _number_cell(context: Context, value: Any, places: int | None = None) -> str:
    return "—" if value is None else formatting.format_decimal(value, _lang(context), places)


@pass_context
def _number_field(context: Context, value: Any, places: int | None = None) -> str:
    if value is None:
        return ""
    return formatting.format_decimal(value, _lang(context), places, group=False)


@pass_context
def _percent(context: Context, value: Any, places: int | None = None) -> str:
    return "—" if value is None else formatting.format_percent(value, _lang(context), places)


@pass_context
def _local(context: Context, value: datetime | None, fmt: str | None = None) -> str:
    if not value:
        return ""
    if fmt is not None:
        return value.astimezone(_zone[0]).strftime(fmt)
    return formatting.format_datetime(value, _lang(context), _zone[0])


@pass_context
def _local_date(context: Context, value: date | None, style: str = "medium") -> str:
    return formatting.format_date(value, _lang(context), _zone[0], style=style) if value else ""


@pass_context
def _local_time(context: Context, value: datetime | None, seconds: bool = False) -> str:
    return (formatting.format_time(value, _lang(context), _zone[0], seconds=seconds)
            if value else "")


@pass_context
def _kind(context: Context, value: Any) -> str:
    """An item kind (single, weighted, multiple, likert) as staff call it; a kind without a
    name in the locale files as it is."""
    kind = str(getattr(value, "value", value) or "")
    key = f"kind.{kind}"
    name = translate(_lang(context), key) if kind else ""
    return kind if name == key else name


@pass_context
def _where(context: Context, location: str | None, lang: str | None = None) -> str:
    """Where a problem is ("row 2, column nip (A)") in the page's language (app/problem_text.py)."""
    return location_text(location or "", lang or _lang(context))


_MEDIA_SRC = re.compile(r'src="media/')


def _media(html: str, version_id: int, prefix: str = "/media/") -> str:
    """Item HTML refers to its images as media/NAME; the server serves them per version
    (staff under /media/, takers under /ujian/media/ with their own access check)."""
    return _MEDIA_SRC.sub(f'src="{prefix}{int(version_id)}/', html)


templates.env.filters["media"] = _media
templates.env.filters["number"] = _number_field
templates.env.filters["percent"] = _percent
templates.env.filters["local"] = _local
templates.env.filters["local_date"] = _local_date
templates.env.filters["local_time"] = _local_time
templates.env.filters["kind"] = _kind
templates.env.filters["where"] = _where
templates.env.globals["number"] = _number_cell
templates.env.globals["percent"] = _percent
templates.env.filters["pair"] = lambda value: (value, value)
templates.env.filters["construct_option"] = lambda row: (row[0], f"{row[0]} ({row[1]})")


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def template_context(request: Request, **context: Any) -> dict[str, Any]:
    lang = request_language(request)
    _render_lang.set(lang)
    token = csrf_token(request)

    def t(key: str, **params: Any) -> str:
        return translate(lang, key, **params)

    return {
        "t": t,
        "lang": lang,
        "csrf_token": token,
        "csrf_input": Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, token),
        "hx_headers": json.dumps({"X-CSRF-Token": token}),
        "user": getattr(request.state, "staff", None),
        "htmx": is_htmx(request),
        **context,
    }


def render(
    request: Request,
    template: str,
    *,
    fragment: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render the full page, or only ``fragment`` when the request comes from HTMX."""
    name = fragment if fragment and is_htmx(request) else template
    return templates.TemplateResponse(
        request,
        name,
        template_context(request, **context),
        status_code=status_code,
        headers=headers,
    )


def redirect(request: Request, url: str) -> Response:
    """303 for a normal browser request; HX-Redirect for HTMX (which would otherwise swap the
    target page into a fragment)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None, default: str = "/") -> str:
    """Only local paths are followed after login, never another site."""
    if not url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return default
    return url


def cookie_secure(request: Request) -> bool:
    mode = request.app.state.settings.cookie_secure
    if mode == "always":
        return True
    if mode == "never":
        return False
    return request.url.scheme == "https"


# -- middleware ---------------------------------------------------------------------------------


class SecurityHeadersMiddleware:
    """Adds the security headers, and gives every browser an anonymous cookie that anonymous
    forms (login) bind their CSRF token to."""

    def __init__(self, app: ASGIApp, secure_cookie: Callable[[Scope], bool]) -> None:
        self.app = app
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        new_anon = None
        cookie_header = dict(scope.get("headers", [])).get(b"cookie", b"").decode("latin-1")
        if f"{ANON_COOKIE}=" not in cookie_header:
            new_anon = random_token(18)
            scope.setdefault("state", {})["anon_id"] = new_anon

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if new_anon:
                    flags = "; Path=/; HttpOnly; SameSite=Lax"
                    if self.secure_cookie(scope):
                        flags += "; Secure"
                    headers.append((b"set-cookie", f"{ANON_COOKIE}={new_anon}{flags}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
