"""Stored XSS: hostile text that enters through the roster CSV (participant names), a proctor's
incident note and an imported item bank (stems and options with scripts and event handlers)
must come out of every page that shows it escaped (names, notes) or stripped (item HTML,
sanitized on import), never as markup. And what a taker's browser receives - pages, the
page's JSON and the API - never carries keys, weights, levels, IRT parameters, constructs or
item codes. Real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bank.models import Item
from app.sessions.models import RosterEntry, TestSession
from tests import factories
from tests.conftest import csrf_from, staff_login
from tests.factories import bank_doc, bank_zip, make_open_session
from tests.integration.test_web import csp_problems

SCRIPT_NAME = "<script>alert(1)</script>"
ATTR_NAME = '"><img src=x onerror=alert(1)>'
NOTE = '<script>alert("note")</script><img src=x onerror=alert(2)>'
# Jinja's escaping of the two names (what must appear instead of markup)
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ATTR_ESCAPED = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"

EVIL_STEM = ('<p onclick="alert(1)">Deret berikutnya?<script>alert(2)</script>'
             '<img src="media/fig1.svg" alt="x" onerror="alert(3)">'
             '<a href="javascript:alert(4)">lihat</a><style>p{}</style>'
             '<iframe src="https://evil.example/"></iframe></p>')
EVIL_OPTION = '<b onmouseover="alert(5)">delapan</b><svg onload="alert(6)"></svg>'

ITEM_CODES = ("NUM-1", "FIG-1", "EMO-1", "MUL-1", "LIK-1")
# (data-key="a" on an option is its keyboard shortcut letter, not the answer key)
# (data-kind="weighted" names the item's kind, which the API documents; no weight goes along)
SECRET_MARKERS = ("is_key", "is-key", "data-key=\"true", '"weight"', "data-weight", "weights",
                  "bobot", '"irt', "irt_", "data-irt", "scoring",
                  "data-points", "data-level", "potensi.", "option-key", *ITEM_CODES)


class Markup(HTMLParser):
    """Every element and attribute of a page, to look for injected ones."""

    def __init__(self):
        super().__init__()
        self.problems = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("iframe", "object", "embed", "svg", "style", "a") and any(
                "alert" in (v or "") or "evil" in (v or "") for v in attrs.values()):
            self.problems.append(f"<{tag}> {attrs}")
        if tag == "img" and not re.match(r"^(/static/|/media/\d+/|/ujian/media/\d+/|data:)",
                                         attrs.get("src") or ""):
            self.problems.append(f"<img src={attrs.get('src')!r}>")
        for name, value in attrs.items():
            if value and "javascript:" in value.lower():
                self.problems.append(f"{name}={value!r} on <{tag}>")


# The interface's own icons, drawn from the sprite frontend/static/icons.svg: the only <svg> a
# page may hold.
ICON = re.compile(r'<svg class="icon[\w -]*" width="1em" height="1em" focusable="false" '
                  r'(?:aria-hidden="true"|role="img" aria-label="[^"<>]*")>'
                  r'<use href="/static/icons\.svg#[\w-]+"></use></svg>')


def assert_clean(html: str, where: str) -> None:
    assert csp_problems(html) == [], where  # no inline script, no on* handler, no style attr
    parser = Markup()
    parser.feed(html)
    assert parser.problems == [], where
    for raw in (SCRIPT_NAME, ATTR_NAME, "<script>alert", "<img src=x", "<iframe", "<svg",
                "<style"):
        assert raw not in ICON.sub("", html), (where, raw)  # escaped text never has a "<"
    # An on* handler in a real attribute is caught by the parsers above; written as text it
    # may only appear inside escaped markup.
    for match in re.finditer(r"on(error|click|load|mouseover)=", html):
        assert "&lt;" in html[max(0, match.start() - 60):match.start()], \
            (where, html[max(0, match.start() - 80):match.end() + 40])


def evil_bank() -> bytes:
    doc = bank_doc()
    first = doc["items"][0]
    first["stem"] = EVIL_STEM
    first["options"][1]["text"] = EVIL_OPTION
    doc["items"][2]["stem"] = '<p>Rekan marah<img src=x onerror="alert(7)"></p>'.replace(
        "src=x", 'src="media/fig1.svg"')
    return bank_zip(doc)


@pytest.fixture
def stage(app, client, database, settings, clock, make_user, monkeypatch):
    """Session X built on the hostile bank, a roster with hostile names (through the admin's
    CSV upload), a proctor's hostile note, and a hostile-named taker who answered and
    handed in."""
    from app.auth.models import User
    from app.sessions.models import ProctorAssignment

    monkeypatch.setattr(factories, "bank_zip", lambda *_a, **_k: evil_bank())
    make_user("pak.budi", "proctor")
    with database.transaction() as db:
        x, _ = make_open_session(db, clock, secret=settings.resolved_secret(), participants=1,
                                 code="RUANG-X")
        budi = db.scalar(select(User.id).where(User.username == "pak.budi"))
        db.add(ProctorAssignment(session_id=x.id, user_id=budi))

    admin = client
    staff_login(admin, "admin", make_user("admin"))
    page = admin.get("/admin/sessions/RUANG-X")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["nip", "nama", "kelompok_jabatan", "unit_kerja"])
    writer.writerow(["198001012005011101", SCRIPT_NAME, "pengawas", ATTR_NAME])
    writer.writerow(["198001012005011102", ATTR_NAME, "pelaksana", SCRIPT_NAME])
    upload = admin.post("/admin/sessions/RUANG-X/roster",
                        data={"csrf_token": csrf_from(page.text)},
                        files={"file": ("roster.csv", buffer.getvalue().encode(), "text/csv")})
    assert upload.status_code == 200, upload.text
    tokens = {row["nip"]: row["token"] for row in csv.DictReader(io.StringIO(
        admin.get("/admin/sessions/RUANG-X/tokens.csv").text))}

    taker = TestClient(app)
    login = taker.get("/")
    assert taker.post("/ujian/masuk", data={
        "nip": "198001012005011101", "token": tokens["198001012005011101"],
        "csrf_token": csrf_from(login.text)}, follow_redirects=False).status_code == 303

    proctor = TestClient(app)
    staff_login(proctor, "pak.budi", "correct-horse-1")
    with database.transaction(write=False) as db:
        entry = db.scalar(select(RosterEntry.id).join(
            TestSession, TestSession.id == RosterEntry.session_id)
            .where(TestSession.code == "RUANG-X").order_by(RosterEntry.id.desc()).limit(1))
        entry_script = db.scalar(select(RosterEntry.id).where(
            RosterEntry.session_id == select(TestSession.id).where(
                TestSession.code == "RUANG-X").scalar_subquery())
            .order_by(RosterEntry.id).offset(1).limit(1))
    console = proctor.get("/proctor/sessions/RUANG-X")
    noted = proctor.post(f"/proctor/sessions/RUANG-X/peserta/{entry_script}/note",
                         data={"csrf_token": csrf_from(console.text), "reason": NOTE},
                         headers={"HX-Request": "true"})
    assert noted.status_code == 200, noted.text
    return {"admin": admin, "proctor": proctor, "taker": taker, "upload": upload,
            "entries": (entry_script, entry), "console_csrf": csrf_from(console.text)}


def test_hostile_names_notes_and_items_come_out_escaped_or_stripped(stage, app, database):
    admin, proctor, taker = stage["admin"], stage["proctor"], stage["taker"]
    pages: dict[str, str] = {"roster upload answer": stage["upload"].text}

    # The taker's pages (the name is in the header; the hostile stem on the first item).
    instructions = taker.get("/ujian")
    pages["taker instructions"] = instructions.text
    started = taker.post("/ujian/mulai", data={"csrf_token": csrf_from(instructions.text)})
    csrf = csrf_from(started.text)
    for position in range(1, 4):
        pages[f"taker item {position}"] = taker.get(f"/ujian/soal/{position}").text
    assert any("Deret berikutnya?" in pages[f"taker item {p}"] for p in range(1, 4))
    assert any("delapan" in pages[f"taker item {p}"] for p in range(1, 4))

    # Staff pages that show names, notes or item content.
    for path in ("/admin/sessions/RUANG-X", "/admin/sessions/RUANG-X/cards", "/proctor",
                 "/admin/audit", "/admin/banks/UJI-POT/v/1"):
        pages["admin " + path] = admin.get(path).text
    with database.transaction(write=False) as db:
        item_ids = list(db.scalars(select(Item.id).order_by(Item.id)))
    for item_id in item_ids:
        pages[f"admin item {item_id}"] = admin.get(f"/admin/items/{item_id}").text
    for path in ("/proctor/sessions/RUANG-X", "/proctor/sessions/RUANG-X/grid"):
        pages["proctor " + path] = proctor.get(path).text
    for entry in stage["entries"]:
        pages[f"proctor panel {entry}"] = proctor.get(
            f"/proctor/sessions/RUANG-X/peserta/{entry}").text
        pages[f"proctor panel fragment {entry}"] = proctor.get(
            f"/proctor/sessions/RUANG-X/peserta/{entry}", headers={"HX-Request": "true"}).text

    # Hand in, then the results and the room's score screen (both show names).
    finished = taker.post("/ujian/selesai", data={"csrf_token": csrf})
    pages["taker finished"] = finished.text
    pages["admin results"] = admin.get("/admin/sessions/RUANG-X/results").text
    proctor.post("/proctor/sessions/RUANG-X/papan", data={"csrf_token": stage["console_csrf"],
                                                          "enabled": "on"})
    link = re.search(r'href="(/papan/RUANG-X/[^"]+)"',
                     proctor.get("/proctor/sessions/RUANG-X").text).group(1)
    pages["score screen"] = TestClient(app).get(link).text

    for where, html in pages.items():
        assert_clean(html, where)
    # The names were shown (escaped), not lost.
    for where in ("admin /admin/sessions/RUANG-X", "proctor /proctor/sessions/RUANG-X",
                  "proctor /proctor/sessions/RUANG-X/grid", "admin results",
                  "admin /admin/sessions/RUANG-X/cards", "taker instructions",
                  "score screen"):
        assert SCRIPT_ESCAPED in pages[where], where
    for where in ("admin /admin/sessions/RUANG-X", "proctor /proctor/sessions/RUANG-X",
                  "admin /admin/sessions/RUANG-X/cards"):
        assert ATTR_ESCAPED in pages[where], where
    notes = [h for w, h in pages.items() if w.startswith("proctor panel")]
    assert any("&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt;" in h for h in notes)


def test_item_html_is_stripped_in_the_database_and_on_the_wire(stage, app, database):
    with database.transaction(write=False) as db:
        stored = " ".join(db.scalars(select(Item.stem)))
    for bad in ("<script", "onclick", "onerror", "onmouseover", "onload", "javascript:",
                "<iframe", "<style", "<svg"):
        assert bad not in stored, bad
    assert 'src="media/fig1.svg"' in stored  # the bank's own image is kept

    client = TestClient(app)
    login = client.post("/api/v1/taker/login", json={
        "nip": "198001012005011102",  # not logged in elsewhere yet
        "token": next(r["token"] for r in csv.DictReader(io.StringIO(
            stage["admin"].get("/admin/sessions/RUANG-X/tokens.csv").text))
            if r["nip"] == "198001012005011102")})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    form = client.get("/api/v1/taker/attempt")
    for item in form.json()["items"]:
        fragments = [item["stem"] or ""] + [o["html"] if "html" in o else json.dumps(o)
                                            for o in item["options"]]
        for html in fragments:
            for bad in ("<script", "onclick", "onerror", "onmouseover", "onload",
                        "javascript:", "<iframe", "<svg"):
                assert bad not in html, (bad, html)


# -- nothing secret reaches a taker --------------------------------------------------------------


def _no_secrets(text: str, where: str) -> None:
    lowered = text.lower()
    for marker in SECRET_MARKERS:
        assert marker.lower() not in lowered, (where, marker)


def json_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in json_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in json_keys(v)}
    return set()


def test_keys_weights_and_parameters_never_reach_taker_pages(app, database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=2)
    taker = TestClient(app)
    seen: dict[str, str] = {}
    login_page = taker.get("/")
    seen["login"] = login_page.text
    taker.post("/ujian/masuk", data={"nip": logins[0][0], "token": logins[0][1],
                                     "csrf_token": csrf_from(login_page.text)})
    instructions = taker.get("/ujian")
    seen["instructions"] = instructions.text
    started = taker.post("/ujian/mulai", data={"csrf_token": csrf_from(instructions.text)})
    csrf = csrf_from(started.text)
    for position in range(1, 6):  # the second section's items answer with a redirect
        seen[f"item {position}"] = taker.get(f"/ujian/soal/{position}").text
    status = taker.get("/ujian/status")
    seen["status"] = status.text
    assert json_keys(status.json()) == {"state", "current_section", "remaining_s",
                                        "server_time", "test_remaining_s"}
    item_id = int(started.text.split('data-item="')[1].split('"')[0])
    saved = taker.put(f"/ujian/jawaban/{item_id}", json={"response": None, "seq": 1},
                      headers={"X-CSRF-Token": csrf})
    seen["save"] = saved.text
    assert json_keys(saved.json()) == {"stored_seq", "accepted", "remaining_s", "state"}
    seen["next section"] = taker.post("/ujian/bagian-berikut",
                                      data={"csrf_token": csrf}).text
    for position in range(4, 6):
        seen[f"section 2 item {position}"] = taker.get(f"/ujian/soal/{position}").text
    with database.transaction(write=False) as db:
        version = db.scalar(select(Item.bank_version_id))
    media = taker.get(f"/ujian/media/{version}/fig1.svg")
    assert media.status_code == 200
    seen["finished"] = taker.post("/ujian/selesai", data={"csrf_token": csrf}).text
    assert 'data-testid="finished"' in seen["finished"]

    api = TestClient(app)
    login = api.post("/api/v1/taker/login", json={"nip": logins[1][0], "token": logins[1][1]})
    seen["api login"] = login.text
    api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    for path in ("/api/v1/taker/attempt", "/api/v1/taker/status"):
        seen["api " + path] = api.get(path).text
    seen["api next"] = api.post("/api/v1/taker/sections/next").text
    seen["api attempt 2"] = api.get("/api/v1/taker/attempt").text
    seen["api submit"] = api.post("/api/v1/taker/submit").text

    for where, text in seen.items():
        _no_secrets(text, where)
    # The response headers say nothing either.
    for response in (status, saved, media):
        _no_secrets(json.dumps(dict(response.headers)), "headers")
