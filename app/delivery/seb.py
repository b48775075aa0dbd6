"""Safe Exam Browser (SEB), optional per session.

When a session's ``settings`` hold ``seb_config_key`` (the 64-hex-digit Config Key that SEB
shows for the exam's configuration file), every taker request of that session must carry
``X-SafeExamBrowser-ConfigKeyHash`` = hex SHA-256(absolute URL + config key), which SEB adds
to each request it sends. With ``seb_browser_exam_keys`` (a list of Browser Exam Keys, one per
SEB build/configuration the lab uses) the request must also carry
``X-SafeExamBrowser-RequestHash`` = hex SHA-256(absolute URL + one of those keys).

The URL is the one the browser requested: scheme, host (with a non-default port), path and
query, without the fragment. Behind a reverse proxy the scheme and host come from
``X-Forwarded-Proto``/``X-Forwarded-Host``, but only when the request's peer is one of
``settings.forwarded_allow_ips`` (uvicorn's ``proxy_headers`` has then usually already set the
scheme from the same header); from anyone else those headers are ignored.

What this proves is limited, and docs/security.md says so: the header is the same for every
request of one URL, so a person who can read an SEB request's headers can replay them from an
ordinary browser. It keeps ordinary browsers (and a taker who simply opens the address in
Chrome) out; it does not stop a determined attacker on a machine they control.

The sessions that use SEB are read from the database at most every ``CACHE_S`` seconds per
app (a taker request costs no query when no session uses SEB); the admin route that changes
the setting (``app.sessions.seb``) forgets the cache at once in its own process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.delivery.attempts import LoginRefused, TakerError
from app.sessions.models import SessionState, TestSession

CONFIG_KEY_HEADER = "x-safeexambrowser-configkeyhash"
REQUEST_HASH_HEADER = "x-safeexambrowser-requesthash"
CACHE_S = 5.0
ERROR_KEY = "taker.error_seb"
ERROR_DETAIL = ("this session must be taken in Safe Exam Browser with the organizers' "
                "configuration (X-SafeExamBrowser-ConfigKeyHash missing or wrong)")


@dataclass(frozen=True)
class SebConfig:
    config_key: str
    browser_exam_keys: tuple[str, ...] = ()


def config_of(settings: dict[str, Any] | None) -> SebConfig | None:
    """The SEB requirement stored in a session's settings, or None."""
    key = (settings or {}).get("seb_config_key")
    if not key:
        return None
    return SebConfig(str(key), tuple(str(k) for k in (settings or {}).get(
        "seb_browser_exam_keys") or ()))


# -- the URL the browser saw -----------------------------------------------------------------


def _trusted(peer: str | None, allowed: str) -> bool:
    if peer is None:
        return False
    for entry in (e.strip() for e in allowed.split(",")):
        if not entry:
            continue
        if entry == "*" or entry == peer:
            return True
        try:
            if ipaddress.ip_address(peer) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name, or a peer that is not an address (test clients)
    return False


def _first(request: Request, name: str) -> str:
    """The first value of a (possibly repeated, comma-joined) forwarded header."""
    return request.headers.get(name, "").split(",")[0].strip()


def browser_url(request: Request) -> str:
    """The absolute URL of this request as the browser requested it (no fragment)."""
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host = request.headers.get("host", "")
    client = scope.get("client")
    if _trusted(client[0] if client else None, request.app.state.settings.forwarded_allow_ips):
        proto = _first(request, "x-forwarded-proto").lower()
        if proto in ("http", "https"):
            scheme = proto
        host = _first(request, "x-forwarded-host") or host
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]  # browsers never show (or hash) a default port
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope.get("path", "/"))
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def url_hash(url: str, key: str) -> str:
    """What SEB sends: hex SHA-256 of the URL followed by the key."""
    return hashlib.sha256((url + key).encode("utf-8")).hexdigest()


def request_allowed(request: Request, config: SebConfig) -> bool:
    url = browser_url(request)
    sent = request.headers.get(CONFIG_KEY_HEADER, "").strip().lower()
    if not hmac.compare_digest(sent.encode(), url_hash(url, config.config_key).encode()):
        return False
    if config.browser_exam_keys:
        sent = request.headers.get(REQUEST_HASH_HEADER, "").strip().lower()
        matches = [hmac.compare_digest(sent.encode(), url_hash(url, key).encode())
                   for key in config.browser_exam_keys]
        return any(matches)
    return True


# -- which sessions use it ---------------------------------------------------------------------


class _Registry:
    """Per app: session id -> SebConfig for the sessions that are not closed and use SEB."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expires = 0.0
        self.configs: dict[int, SebConfig] = {}

    def get(self, db: Session) -> dict[int, SebConfig]:
        if time.monotonic() < self.expires:
            return self.configs
        rows = db.execute(select(TestSession.id, TestSession.settings)
                          .where(TestSession.state != SessionState.closed)).all()
        configs = {sid: c for sid, s in rows if (c := config_of(s)) is not None}
        with self.lock:
            self.configs, self.expires = configs, time.monotonic() + CACHE_S
        return configs

    def forget(self) -> None:
        with self.lock:
            self.expires = 0.0


def _registry(app) -> _Registry:
    registry = getattr(app.state, "seb_registry", None)
    if registry is None:
        registry = app.state.seb_registry = _Registry()
    return registry


def forget(app) -> None:
    """Re-read the sessions' SEB settings on the next taker request (after a change)."""
    _registry(app).forget()


def check(request: Request, db: Session, session_id: int) -> None:
    """Refuse (403, ``taker.error_seb``) a taker request of an SEB session without a valid
    SEB header. Called by the taker dependencies and the save path."""
    config = _registry(request.app).get(db).get(session_id)
    if config is not None and not request_allowed(request, config):
        raise TakerError(403, ERROR_KEY, ERROR_DETAIL)


def check_saving(request: Request, db: Session, token: str) -> None:
    """The autosave path looks its attempt up itself (one prepared query); the session id
    is only looked up here when some session uses SEB at all."""
    configs = _registry(request.app).get(db)
    if not configs or not token:
        return
    from app.auth.security import keyed_digest
    from app.delivery.attempts import ACCESS_PURPOSE
    from app.delivery.models import Attempt

    session_id = db.scalar(select(Attempt.session_id).where(
        Attempt.access_token_hmac == keyed_digest(request.app.state.secret, ACCESS_PURPOSE,
                                                  token)))
    if session_id is not None:
        check(request, db, session_id)


def check_login(request: Request, db: Session, *, session: TestSession, nip: str,
                client_addr: str, now: datetime) -> None:
    """After the credentials matched and before anything of the login is written (called by
    ``attempts.login`` as its ``admit``): a session that needs SEB refuses a login from another
    browser. Nothing of the login is kept (no new access token, no seat binding), only an
    audit row saying that it was refused, committed with the refusal."""
    config = config_of(session.settings)
    if config is None or request_allowed(request, config):
        return
    audit.record(db, actor=f"taker:{nip}", action="taker.login_refused_seb",
                 target=f"session:{session.code}", now=now, data={"addr": client_addr})
    raise LoginRefused(403, ERROR_KEY, ERROR_DETAIL)


# -- the admin's setting -------------------------------------------------------------------------
