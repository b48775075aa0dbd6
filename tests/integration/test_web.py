"""Cross-cutting web rules: security headers, CSP-clean pages, every route guarded, HTMX
fragments, language switch, health check, API docs without internet."""

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.main import api_routes, create_app
from app.settings import Settings
from app.web import CONTENT_SECURITY_POLICY
from tests.conftest import FAST_ARGON2, csrf_from, staff_login

# Routes that must answer without a staff login (everything else must refuse anonymous users).
PUBLIC_ROUTES = {
    ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("POST", "/lang"),
    ("GET", "/healthz"), ("GET", "/docs"), ("GET", "/openapi.json"),
    ("POST", "/ujian/masuk"), ("POST", "/ujian/keluar"), ("POST", "/api/v1/taker/login"),
    ("GET", "/papan/{code}/{key}"),  # the room's score screen: its unguessable key admits
}
# Taker routes answer an anonymous browser by sending it to the taker login page ("/"), and
# the page's own JSON calls with 401, like the API.
TAKER_JSON = ("/ujian/jawaban/", "/ujian/status")


class ScriptAudit(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, inline handlers, style attrs."""

    def __init__(self):
        super().__init__()
        self.problems, self._in_inline_script = [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and "src" not in attrs:
            self._in_inline_script = True
            self.problems.append("inline <script>")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"handler {name} on <{tag}>")
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.problems.append(f"remote {name} {value}")
            if name in ("hx-on", "hx-vals") or name.startswith("hx-on"):
                self.problems.append(f"{name} needs eval")


def csp_problems(html):
    parser = ScriptAudit()
    parser.feed(html)
    return parser.problems


def test_security_headers_on_every_kind_of_response(client):
    for path in ("/login", "/healthz", "/static/css/app.css", "/no-such-page", "/openapi.json"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_pages_satisfy_the_content_security_policy(client, make_user):
    pages = {}
    for path in ("/", "/login", "/no-such-page", "/docs"):
        pages[path] = client.get(path).text
    admin_password = make_user("admin")
    proctor_password = make_user("pak.budi", role="proctor")
    staff_login(client, "admin", admin_password)
    for path in ("/admin", "/admin/users", "/admin/audit", "/admin/audit?check=1", "/proctor"):
        pages["admin " + path] = client.get(path).text
    client.cookies.clear()
    staff_login(client, "pak.budi", proctor_password)
    for path in ("/proctor", "/admin"):
        pages["proctor " + path] = client.get(path).text
    for name, html in pages.items():
        assert csp_problems(html) == [], name
        assert "<html" in html, name


def test_every_route_refuses_anonymous_users_unless_public(app, client):
    routes = api_routes()
    assert len(routes) >= 10
    checked = 0
    for route in routes:
        for method in route.methods - {"HEAD"}:
            if (method, route.path) in PUBLIC_ROUTES:
                continue
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            token = csrf_from(client.get("/login").text)
            if method == "PUT":  # JSON endpoints: a well-formed body, so only access is judged
                response = client.request(method, path, json={"response": None, "seq": 1},
                                          headers={"X-CSRF-Token": token},
                                          follow_redirects=False)
            else:
                response = client.request(method, path, data={"csrf_token": token},
                                          headers={"X-CSRF-Token": token},
                                          follow_redirects=False)
            if path.startswith("/api/") or path.startswith(TAKER_JSON):
                assert response.status_code == 401, (method, path, response.status_code)
            elif path.startswith("/ujian"):
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"] == "/", (method, path)
            else:
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 5


def test_htmx_request_gets_a_fragment_and_a_browser_the_page(admin):
    client = admin
    full = client.get("/admin/audit")
    fragment = client.get("/admin/audit", headers={"HX-Request": "true"})
    assert "<html" in full.text and "<html" not in fragment.text
    assert "auth.login" in full.text and "auth.login" in fragment.text


def test_htmx_login_redirect_uses_hx_redirect(client):
    response = client.get("/admin", headers={"HX-Request": "true"}, follow_redirects=False)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login")


def test_language_switch_turns_pages_english(client):
    page = client.get("/login")
    assert "Masuk petugas" in page.text and 'lang="id"' in page.text
    switched = client.post("/lang", data={"lang": "en", "next": "/login",
                                          "csrf_token": csrf_from(page.text)})
    assert switched.status_code == 200
    assert "Staff login" in switched.text and 'lang="en"' in switched.text
    evil = client.post("/lang", data={"lang": "en", "next": "https://evil.example/",
                                      "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)
    assert evil.headers["location"] == "/"


def test_default_language_comes_from_settings(database, tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=database.url, language="en",
                        secret_key="k" * 40, **FAST_ARGON2)
    with TestClient(create_app(settings, database=database)) as english:
        assert "Staff login" in english.get("/login").text


def test_healthz_reports_the_database(client, tmp_path):
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json()["checks"]["database"] == "ok"
    broken_url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"
    settings = Settings(data_dir=tmp_path, database_url=broken_url, secret_key="k" * 40)
    with TestClient(create_app(settings, database=Database(broken_url))) as broken:
        down = broken.get("/healthz")
    assert down.status_code == 503 and down.json()["failing"] == ["database"]


def test_api_docs_work_without_internet(client):
    page = client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "http" not in page.lower()
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/healthz" in spec["paths"]


@pytest.mark.parametrize("path", ["/static/vendor/htmx/htmx-2.0.11.min.js",
                                  "/static/vendor/htmx/htmx-ext-sse-2.2.4.js"])
def test_htmx_is_vendored_and_served(client, path):
    response = client.get(path)
    assert response.status_code == 200 and "htmx" in response.text
