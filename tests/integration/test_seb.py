"""Safe Exam Browser, optional per session (app/delivery/seb.py): with a Config Key set, every
taker request of the session (login, pages, the page's JSON calls, the API, saves) must carry
X-SafeExamBrowser-ConfigKeyHash = SHA-256(absolute URL + key); everything else is refused with
403 and ``taker.error_seb``. The URL is the one the browser saw, also behind a trusted proxy,
and forwarded headers from anyone else are ignored. Real SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.delivery import seb
from app.delivery.models import Attempt
from app.sessions.models import TestSession
from tests.conftest import csrf_from, staff_login
from tests.factories import make_open_session

KEY = "a1" * 32
OTHER_KEY = "b2" * 32
BEK = "c3" * 32
HEADER = "X-SafeExamBrowser-ConfigKeyHash"


def digest(url: str, key: str = KEY) -> str:
    return hashlib.sha256((url + key).encode()).hexdigest()


def seb_client(app, key: str = KEY, *, exam_key: str | None = None, base_url="http://testserver",
               client=("testclient", 50000), **kwargs) -> TestClient:
    """A client that behaves like SEB: each request (redirects too) carries the hash of the
    URL it is sent to."""
    http = TestClient(app, base_url=base_url, client=client, **kwargs)

    def sign(request):
        request.headers[HEADER] = digest(str(request.url), key)
        if exam_key:
            request.headers["X-SafeExamBrowser-RequestHash"] = digest(str(request.url), exam_key)

    http.event_hooks = {"request": [sign], "response": []}
    return http


@pytest.fixture
def logins(database, settings, clock):
    """Session S1 requires SEB; session S2 (other participants) does not."""
    with database.transaction() as db:
        s1, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                       participants=3)
        s1.settings = {"seb_config_key": KEY}
        _, plain = make_open_session(db, clock, secret=settings.resolved_secret(),
                                     participants=1, code="S2", first=50)
    return logins + plain  # the last one is in S2


def page_login(client, nip, token, **kwargs):
    page = client.get("/")
    return client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                             "csrf_token": csrf_from(page.text)},
                       follow_redirects=False, **kwargs)


def audit_actions(database) -> list[str]:
    with database.transaction(write=False) as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_the_hash_is_sha256_of_the_url_and_the_key(app, logins):
    """A literal check, independent of the test client's signing hook."""
    nip, token = logins[0]
    client = TestClient(app)
    url = "http://testserver/api/v1/taker/login"
    good = client.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                       headers={HEADER: hashlib.sha256((url + KEY).encode()).hexdigest()})
    assert good.status_code == 200, good.text
    bearer = {"Authorization": f"Bearer {good.json()['access_token']}"}
    status = client.get("/api/v1/taker/status", headers={
        **bearer, HEADER: digest("http://testserver/api/v1/taker/status").upper()})
    assert status.status_code == 200  # hex digits in either case
    refused = client.get("/api/v1/taker/status", headers={**bearer, HEADER: digest(url)})
    assert refused.status_code == 403 and refused.json()["code"] == "taker.error_seb"


def test_api_with_seb_is_served_and_without_it_refused(app, logins, database):
    nip, token = logins[0]
    client = seb_client(app)
    login = client.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                     "workstation": "PC-01"})
    assert login.status_code == 200, login.text
    access = login.json()["access_token"]
    client.headers["Authorization"] = f"Bearer {access}"
    form = client.get("/api/v1/taker/attempt").json()
    item = form["items"][0]
    option = item["options"][0]["id"]
    answer = [option] if item["kind"] == "multiple" else option
    saved = client.put(f"/api/v1/taker/answers/{item['item_id']}",
                       json={"response": answer, "seq": 1})
    assert saved.status_code == 200 and saved.json()["accepted"]
    assert client.get("/api/v1/taker/status").status_code == 200

    plain = TestClient(app, headers={"Authorization": f"Bearer {access}"})
    wrong = seb_client(app, OTHER_KEY, headers={"Authorization": f"Bearer {access}"})
    for http in (plain, wrong):
        for method, path, body in (
                ("GET", "/api/v1/taker/attempt", None), ("GET", "/api/v1/taker/status", None),
                ("PUT", f"/api/v1/taker/answers/{item['item_id']}",
                 {"response": answer, "seq": 2}),
                ("POST", "/api/v1/taker/sections/next", None),
                ("POST", "/api/v1/taker/submit", None)):
            refused = http.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.json()["code"] == "taker.error_seb"
    with database.transaction(write=False) as db:
        attempt = db.scalar(select(Attempt))
        assert attempt.state.value == "active" and attempt.last_seq == 1 \
            and attempt.current_section == 0


def test_a_login_from_another_browser_is_refused_and_changes_nothing(app, logins, database):
    nip, token = logins[0]
    client = seb_client(app)
    first = client.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                     "workstation": "PC-01"})
    access = first.json()["access_token"]
    with database.transaction(write=False) as db:
        before = db.scalar(select(Attempt.access_token_hmac))
    for http in (TestClient(app), seb_client(app, OTHER_KEY)):
        refused = http.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                         "workstation": "PC-01"})
        assert refused.status_code == 403 and refused.json()["code"] == "taker.error_seb"
        # On the page, someone whose attempt does not exist yet: none is made.
        page = page_login(http, *logins[1])
        assert page.status_code == 403 and "Safe Exam Browser" in page.text
        assert "cact_taker" not in page.cookies
    with database.transaction(write=False) as db:
        assert db.scalar(select(Attempt.access_token_hmac)) == before  # not rotated
        assert db.scalar(select(func.count()).select_from(Attempt)) == 1
    client.headers["Authorization"] = f"Bearer {access}"
    assert client.get("/api/v1/taker/status").status_code == 200  # SEB seat still works
    assert audit_actions(database).count("taker.login_refused_seb") == 4
    # Wrong credentials are still wrong credentials (401), SEB or not.
    assert TestClient(app).post("/api/v1/taker/login", json={
        "nip": nip, "token": "WRONGTKN"}).status_code == 401


def test_pages_with_seb_and_without(app, logins):
    nip, token = logins[0]
    client = seb_client(app)
    assert page_login(client, nip, token).status_code == 303
    instructions = client.get("/ujian")
    assert 'data-testid="start-exam"' in instructions.text
    started = client.post("/ujian/mulai", data={"csrf_token": csrf_from(instructions.text)})
    assert 'data-testid="taker-item"' in started.text  # followed the redirects, each signed
    csrf = csrf_from(started.text)
    item_id = int(started.text.split('data-item="')[1].split('"')[0])
    assert client.get("/ujian/status").status_code == 200
    saved = client.put(f"/ujian/jawaban/{item_id}", json={"response": None, "seq": 1},
                       headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200, saved.text

    # The same browser session without the header (the cookie copied to another browser).
    plain = TestClient(app, cookies=dict(client.cookies))
    page = plain.get("/ujian/soal/1", follow_redirects=False)
    assert page.status_code == 403 and "Safe Exam Browser" in page.text
    assert "Ujian ini hanya dapat dikerjakan" in page.text and 'data-testid="taker-item"' \
        not in page.text
    status = plain.get("/ujian/status")
    assert status.status_code == 403 and status.json()["code"] == "taker.error_seb"
    save = plain.put(f"/ujian/jawaban/{item_id}", json={"response": None, "seq": 2},
                     headers={"X-CSRF-Token": csrf})
    assert save.status_code == 403 and save.json()["code"] == "taker.error_seb"
    with_key_of_other_page = plain.get("/ujian", headers={
        HEADER: digest("http://testserver/ujian/status")})
    assert with_key_of_other_page.status_code == 403  # a hash is bound to its URL
    assert plain.post("/ujian/selesai", data={"csrf_token": csrf},
                      follow_redirects=False).status_code == 403


def test_the_query_string_is_part_of_the_url(app, logins):
    nip, token = logins[0]
    client = seb_client(app)
    assert page_login(client, nip, token).status_code == 303
    cookies = dict(client.cookies)
    plain = TestClient(app, cookies=cookies)
    url = "http://testserver/ujian/status?t=17&x=a%20b"
    ok = plain.get("/ujian/status?t=17&x=a%20b", headers={HEADER: digest(url)})
    assert ok.status_code == 200, ok.text
    without_query = plain.get("/ujian/status?t=17&x=a%20b",
                              headers={HEADER: digest("http://testserver/ujian/status")})
    assert without_query.status_code == 403
    assert seb_client(app, cookies=cookies).get("/ujian/status?t=18").status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_url_counts(database, settings, clock, logins):
    from app.main import create_app

    proxied = settings.model_copy(update={"forwarded_allow_ips": "127.0.0.1, 10.9.0.0/24"})
    app = create_app(proxied, clock=clock, database=database)
    nip, token = logins[0]
    proxy = TestClient(app, client=("10.9.0.5", 40000))
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cact.lab.example",
                 "X-Forwarded-For": "192.168.1.77"}
    url = "https://cact.lab.example/api/v1/taker/login"
    login = proxy.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                       headers={**forwarded, HEADER: digest(url)})
    assert login.status_code == 200, login.text
    # The address the proxy itself was asked for does not count there.
    inner = proxy.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                       headers={**forwarded,
                                HEADER: digest("http://testserver/api/v1/taker/login")})
    assert inner.status_code == 403
    # A default port is not part of the URL a browser hashes.
    with_port = proxy.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                           headers={**forwarded, "X-Forwarded-Host": "cact.lab.example:443",
                                    HEADER: digest(url)})
    assert with_port.status_code == 200


def test_behind_uvicorn_proxy_headers(database, settings, clock, logins):
    """In production uvicorn (proxy_headers, forwarded_allow_ips) rewrites the scheme and the
    client before the app sees the request; nginx passes the browser's Host. The URL the app
    checks is then the browser's."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from app.main import create_app

    app = create_app(settings, clock=clock, database=database)  # forwarded_allow_ips 127.0.0.1
    wrapped = ProxyHeadersMiddleware(app, trusted_hosts=settings.forwarded_allow_ips)
    nip, token = logins[0]
    nginx = TestClient(wrapped, base_url="http://cact.lab", client=("127.0.0.1", 40000))
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.168.1.77"}
    ok = nginx.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                    headers={**headers, HEADER: digest("https://cact.lab/api/v1/taker/login")})
    assert ok.status_code == 200, ok.text
    plain_http = nginx.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                            headers={**headers,
                                     HEADER: digest("http://cact.lab/api/v1/taker/login")})
    assert plain_http.status_code == 403
    # From an address uvicorn does not trust, the forwarded scheme is ignored.
    direct = TestClient(wrapped, base_url="http://cact.lab", client=("192.168.1.77", 40000))
    spoofed = direct.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                          headers={**headers,
                                   HEADER: digest("https://cact.lab/api/v1/taker/login")})
    assert spoofed.status_code == 403
    honest = direct.post("/api/v1/taker/login", json={"nip": nip, "token": token},
                         headers={HEADER: digest("http://cact.lab/api/v1/taker/login")})
    assert honest.status_code == 200


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(app, logins):
    nip, token = logins[0]
    stranger = TestClient(app, client=("192.168.1.50", 40000))  # trusted: 127.0.0.1 only
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cact.lab.example"}
    spoofed = stranger.post("/api/v1/taker/login", json={"nip": nip, "token": token}, headers={
        **forwarded, HEADER: digest("https://cact.lab.example/api/v1/taker/login")})
    assert spoofed.status_code == 403
    real = stranger.post("/api/v1/taker/login", json={"nip": nip, "token": token}, headers={
        **forwarded, HEADER: digest("http://testserver/api/v1/taker/login")})
    assert real.status_code == 200


def test_browser_exam_keys_when_configured(app, logins, database):
    with database.transaction() as db:
        session = db.scalar(select(TestSession).where(TestSession.code == "S1"))
        session.settings = {**session.settings, "seb_browser_exam_keys": [BEK]}
    seb.forget(app)
    nip, token = logins[1]
    body = {"nip": nip, "token": token}
    assert seb_client(app).post("/api/v1/taker/login", json=body).status_code == 403
    assert seb_client(app, exam_key=OTHER_KEY).post("/api/v1/taker/login",
                                                    json=body).status_code == 403
    assert seb_client(app, exam_key=BEK).post("/api/v1/taker/login",
                                              json=body).status_code == 200


def test_sessions_without_seb_are_unaffected(app, logins):
    nip, token = logins[-1]  # session S2
    client = TestClient(app)
    assert page_login(client, nip, token).status_code == 303
    assert client.get("/ujian").status_code == 200
    assert client.get("/ujian/status").status_code == 200


def test_admin_sets_and_clears_the_key(app, client, make_user, logins, database):
    staff_login(client, "admin", make_user("admin"))
    page = client.get("/admin/sessions/S2")
    assert 'data-testid="seb-form"' in page.text and 'data-testid="seb-state"' in page.text
    csrf = csrf_from(page.text)
    bad = client.post("/admin/sessions/S2/seb", data={"csrf_token": csrf,
                                                      "config_key": "not-a-key"})
    assert bad.status_code == 422 and 'data-testid="seb-error"' in bad.text
    only_bek = client.post("/admin/sessions/S2/seb", data={"csrf_token": csrf,
                                                           "browser_exam_keys": BEK})
    assert only_bek.status_code == 422
    nip, token = logins[-1]
    taker = TestClient(app)
    assert page_login(taker, nip, token).status_code == 303
    assert taker.get("/ujian/status").status_code == 200
    done = client.post("/admin/sessions/S2/seb", data={
        "csrf_token": csrf, "config_key": " " + OTHER_KEY.upper() + " ", "op": "set"},
        follow_redirects=False)
    assert done.status_code == 303
    assert OTHER_KEY[:8] in client.get("/admin/sessions/S2").text
    refused = taker.get("/ujian/status")  # takers already in are refused at once
    assert refused.status_code == 403 and refused.json()["code"] == "taker.error_seb"
    assert seb_client(app, OTHER_KEY, cookies=dict(taker.cookies)).get(
        "/ujian/status").status_code == 200
    cleared = client.post("/admin/sessions/S2/seb", data={"csrf_token": csrf, "op": "clear",
                                                          "config_key": OTHER_KEY},
                          follow_redirects=False)
    assert cleared.status_code == 303
    assert taker.get("/ujian/status").status_code == 200
    with database.transaction(write=False) as db:
        settings = db.scalar(select(TestSession.settings).where(TestSession.code == "S2"))
        events = list(db.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(("session.seb_set", "session.seb_clear")))
            .order_by(AuditEvent.id)))
    assert "seb_config_key" not in settings
    assert [(e.action, e.actor, e.target) for e in events] == [
        ("session.seb_set", "user:admin", "session:S2"),
        ("session.seb_clear", "user:admin", "session:S2")]
    assert OTHER_KEY not in str(events[0].data)  # only a fingerprint is logged


def test_browser_url_unit(app):
    """browser_url on hand-made scopes: raw path kept as sent, default ports dropped."""
    from starlette.requests import Request

    def url(headers, client=("127.0.0.1", 1), scheme="http", raw=b"/ujian/soal/1", qs=b""):
        scope = {"type": "http", "method": "GET", "scheme": scheme, "path": "/ujian/soal/1",
                 "raw_path": raw, "query_string": qs, "client": client, "app": app,
                 "server": ("10.0.0.2", 8000),
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        return seb.browser_url(Request(scope))

    assert url({"Host": "lab:8080"}) == "http://lab:8080/ujian/soal/1"
    assert url({"Host": "lab:80"}) == "http://lab/ujian/soal/1"
    assert url({"Host": "lab:443"}, scheme="https") == "https://lab/ujian/soal/1"
    assert url({}) == "http://10.0.0.2:8000/ujian/soal/1"
    assert url({"Host": "lab"}, raw=b"/ujian/soal/%31", qs=b"a=1") == \
        "http://lab/ujian/soal/%31?a=1"
    assert url({"Host": "lab", "X-Forwarded-Proto": "https, http",
                "X-Forwarded-Host": "exam.example, lab"}) == "https://exam.example/ujian/soal/1"
    assert url({"Host": "lab", "X-Forwarded-Proto": "https"}, client=("10.1.1.1", 1)) == \
        "http://lab/ujian/soal/1"
