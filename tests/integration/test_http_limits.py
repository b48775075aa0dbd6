"""Request body limits and the caching / HSTS headers (app/http_limits.py).

The body limits are tested against a real uvicorn server (httptools, proxy_headers, as `cact
serve` runs it) with raw sockets, so what is measured is what a client on the LAN sees: whether
the server answers before the client finished sending, and how much it took in first."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app import http_limits
from app.bank.models import Item
from tests.conftest import csrf_from, staff_login
from tests.factories import SVG, bank_doc, bank_zip, make_open_session

MIB = 1024 * 1024
# Socket buffers on loopback hold a few MB that the client "sent" while the server read none.
BUFFERED = 16 * MIB


# -- a real server --------------------------------------------------------------------------


@contextmanager
def serving(app) -> Iterator[int]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture
def server(app) -> Iterator[int]:
    with serving(app) as port:
        yield port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent_before_answer: int  # body bytes the client had sent when the answer arrived
    planned: int


def stream_body(port: int, head: str, planned: int, *, chunked: bool = False,
                source: str = "127.0.0.1") -> Answer:
    """Send ``head`` and then a body of ``planned`` bytes as fast as the server takes it, while
    reading the answer; stops sending when the answer arrives or the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                    source_address=(source, 0))
    sock.sendall(head.encode())
    sent = 0
    answered = threading.Event()
    piece = b"x" * (64 * 1024)

    def sender() -> None:
        nonlocal sent
        try:
            while sent < planned and not answered.is_set():
                part = piece[: planned - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
            if chunked and not answered.is_set():
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: exactly what a refusal should do

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        sent_at_answer = sent
        answered.set()
        body = response.read()
    finally:
        answered.set()
        thread.join(timeout=30)
        sock.close()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                  sent_at_answer, planned)


def request_head(method: str, path: str, *, length: int | None, content_type: str,
                 extra: dict[str, str] | None = None) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: cact.lab", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {length}" if length is not None
                 else "Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def multipart_head(path: str, size: int, **extra: str) -> tuple[str, bytes, bytes]:
    boundary = "cactboundary7"
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
             f"filename=\"big.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode()
    last = f"\r\n--{boundary}--\r\n".encode()
    # The declared length leaves the closing boundary out: stream_body sends ``size`` bytes.
    head = request_head("POST", path, length=len(first) + size,
                        content_type=f"multipart/form-data; boundary={boundary}", extra=extra)
    return head, first, last


# -- body limits ----------------------------------------------------------------------------

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])  # the limits do not touch the DB


@sqlite_only
def test_a_50_mb_json_save_is_refused_before_it_is_read(server):
    planned = 50 * MIB
    answer = stream_body(server, request_head(
        "PUT", "/api/v1/taker/answers/1", length=planned, content_type="application/json",
        extra={"Authorization": "Bearer not-even-a-token"}), planned)
    assert answer.status == 413, answer.body[:200]
    assert json.loads(answer.body)["detail"] == "request body too large"
    assert answer.headers["connection"] == "close"  # the rest is never read
    assert answer.headers["cache-control"] == "no-store"
    assert answer.sent_before_answer < BUFFERED, answer.sent_before_answer


@sqlite_only
def test_an_anonymous_500_mb_multipart_login_is_refused_at_once(server):
    size = 500 * MIB
    head, first, _last = multipart_head("/login", size)
    started = time.monotonic()
    answer = stream_body(server, head + first.decode(), size)
    assert answer.status == 413
    page = answer.body.decode()
    assert "Data terlalu besar" in page and "<html" in page.lower()  # Indonesian by default
    assert answer.headers["content-security-policy"]  # the usual headers are there too
    # Answered from the headers: nothing of the 500 MB was read, so nothing was spooled.
    assert answer.sent_before_answer < BUFFERED
    assert time.monotonic() - started < 5


@sqlite_only
def test_a_chunked_body_without_length_is_cut_off_at_the_limit(server):
    planned = 50 * MIB
    answer = stream_body(server, request_head(
        "POST", "/api/v1/taker/login", length=None, content_type="application/json"),
        planned, chunked=True)
    assert answer.status == 413, answer.body[:200]
    assert json.loads(answer.body)["limit_bytes"] == http_limits.SMALL_LIMIT
    assert answer.sent_before_answer < BUFFERED, answer.sent_before_answer
    # A chunked form to /login: the same.
    answer = stream_body(server, request_head(
        "POST", "/login", length=None, content_type="application/x-www-form-urlencoded"),
        planned, chunked=True)
    assert answer.status == 413 and b"Data terlalu besar" in answer.body
    assert answer.sent_before_answer < BUFFERED


@sqlite_only
def test_a_body_within_the_limit_is_served_as_before(app, server):
    body = json.dumps({"nip": "1" * 18, "token": "x" * 20, "workstation": "PC-1" + " " * 40})
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    conn.request("POST", "/api/v1/taker/login", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status in (401, 403, 404, 422), response.read()  # the route answered
    conn.close()


def _admin_cookie(app, make_user, role: str = "admin", name: str = "admin") -> str:
    client = TestClient(app)
    staff_login(client, name, make_user(name, role))
    return f"cact_session={client.cookies['cact_session']}"


@sqlite_only
def test_anonymous_or_forged_cookie_upload_is_refused_before_the_body_is_read(
        app, server, make_user):
    size = 20 * MIB
    for extra in ({}, {"Cookie": "cact_session=forged"},
                  {"Cookie": _admin_cookie(app, make_user, "proctor", "pengawas")}):
        head, first, _last = multipart_head("/admin/banks/upload", size, **extra)
        answer = stream_body(server, head + first.decode(), size)
        assert answer.status == 413, (extra, answer.status, answer.body[:200])
        assert answer.sent_before_answer < BUFFERED


def test_an_admin_still_uploads_a_multi_mb_bank(app, server, make_user, database):
    # Two 4 MB pictures (the bank format allows 5 MB each); random bytes do not compress.
    png = b"\x89PNG\r\n\x1a\n"
    pictures = {"fig1.svg": SVG, "a.png": png + os.urandom(4 * MIB),
                "b.png": png + os.urandom(4 * MIB)}
    doc = bank_doc()
    doc["items"][0]["stem"] = '<p>2, 4, 6, …</p><p><img src="media/a.png" alt="a"></p>'
    doc["items"][2]["stem"] = '<p>Rekan Anda marah.</p><p><img src="media/b.png" alt="b"></p>'
    data = bank_zip(doc, media=pictures)
    assert len(data) > 8 * MIB
    cookie = _admin_cookie(app, make_user)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
    conn.request("GET", "/admin/banks", headers={"Cookie": cookie})
    csrf = csrf_from(conn.getresponse().read().decode())
    boundary = "cactupload"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"uji.zip\"\r\nContent-Type: application/zip\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    conn.request("POST", "/admin/banks/upload", body=body, headers={
        "Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    page = response.read().decode()
    conn.close()
    assert response.status == 200, page[page.find("problem"):][:1500]
    with database.transaction(write=False) as db:
        assert db.scalar(select(Item).where(Item.code == "NUM-1")) is not None
    # Over the upload limit even an admin is refused from the declared length.
    head, first, _last = multipart_head("/admin/banks/upload", 70 * MIB, Cookie=cookie)
    answer = stream_body(server, head + first.decode(), 70 * MIB)
    assert answer.status == 413 and answer.sent_before_answer < BUFFERED


def test_every_upload_route_has_an_upload_limit_and_is_admin_only():
    from fastapi.params import File

    from app.main import api_routes

    uploads = []
    for route in api_routes():
        params = route.dependant.body_params
        if any(isinstance(p.field_info, File) for p in params):
            uploads.append(route.path)
            sample = route.path.replace("{code}", "S1")
            assert http_limits.upload_limit(sample), route.path
            names = {d.call.__name__ for d in route.dependant.dependencies if d.call}
            assert "require_admin" in names, route.path
    assert "/admin/banks/upload" in uploads and len(uploads) == len(http_limits.UPLOAD_LIMITS)


# -- caching and HSTS -----------------------------------------------------------------------


@pytest.fixture
def session_logins(database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=2)
    return logins


def test_taker_pages_and_api_are_no_store(app, session_logins):
    nip, token = session_logins[0]
    browser = TestClient(app)
    login_page = browser.get("/")
    assert login_page.headers["cache-control"] == "no-store"
    entered = browser.post("/ujian/masuk", data={"nip": nip, "token": token,
                                                 "csrf_token": csrf_from(login_page.text)},
                           follow_redirects=True)
    assert entered.status_code == 200 and entered.url.path.startswith("/ujian")
    assert entered.headers["cache-control"] == "no-store"
    api = TestClient(app)
    login = api.post("/api/v1/taker/login", json={"nip": session_logins[1][0],
                                                   "token": session_logins[1][1]})
    assert login.headers["cache-control"] == "no-store"
    api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = api.get("/api/v1/taker/attempt")
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"


def test_key_pages_and_exports_are_no_store_static_files_are_not(
        app, client, make_user, session_logins, database):
    staff_login(client, "admin", make_user("admin"))
    with database.transaction(write=False) as db:
        item_id = db.scalar(select(Item.id).where(Item.code == "NUM-1"))
    for path in (f"/admin/items/{item_id}?key=1", f"/admin/items/{item_id}", "/admin/banks",
                 "/admin/banks/UJI-POT/v/1/export", "/admin/sessions/S1/tokens.csv",
                 "/admin/sessions/S1/results.csv", "/admin/sessions/S1"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert response.headers["cache-control"] == "no-store", path
    static = client.get("/static/css/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get(
        "cache-control", "")
    # A route that chose its own caching keeps it (bank images: private, an hour).
    media = client.get(f"/media/{_version_id(database)}/fig1.svg")
    assert media.headers["cache-control"] == "private, max-age=3600"


def _version_id(database) -> int:
    from app.bank.models import BankVersion

    with database.transaction(write=False) as db:
        return db.scalar(select(BankVersion.id))


def test_hsts_only_over_https_from_a_trusted_proxy(app):
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    wrapped = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    nginx = TestClient(wrapped, client=("127.0.0.1", 40000))
    https = nginx.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" in nginx.get(
        "/static/css/app.css", headers={"X-Forwarded-Proto": "https"}).headers
    plain = nginx.get("/login", headers={"X-Forwarded-Proto": "http"})
    assert "strict-transport-security" not in plain.headers
    assert "strict-transport-security" not in nginx.get("/login").headers
    stranger = TestClient(wrapped, client=("192.168.1.50", 40000))
    spoofed = stranger.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in spoofed.headers


@sqlite_only
def test_hsts_through_uvicorn_proxy_headers(server):
    def get(source: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10,
                                          source_address=(source, 0))
        conn.request("GET", "/login", headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.168.1.77"}
    assert get("127.0.0.1", forwarded).getheader("Strict-Transport-Security") == \
        "max-age=31536000"
    assert get("127.0.0.1", {}).getheader("Strict-Transport-Security") is None
    # 127.0.0.2 is not in forwarded_allow_ips: its X-Forwarded-Proto is ignored.
    assert get("127.0.0.2", forwarded).getheader("Strict-Transport-Security") is None
