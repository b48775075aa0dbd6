"""Who may call what: every route of the app's route table (``app.main.api_routes()``) asked by
every kind of caller, with the path filled in with real objects of session X / attempt A.

Callers: anonymous; the takers of attempts A and B (both in session X, logged in, cookie and
bearer); the proctor assigned to session X; the proctor of session Y (not assigned to X); an
admin. What each may do comes from RULES, keyed by the route's path prefix (longest match
wins), so a new route under a known prefix inherits that prefix's rule, and a route under no
prefix fails this test until someone decides who may call it. A path parameter without a
resolver fails the test as well.

Expectations:
- allowed: the handler was reached: not 401/403/404, no server error, and no redirect to a
  login page (for the same route an incomplete form answers 422, which counts as reached);
- denied, per audience:
  - staff pages (HTML): anyone without a staff session -> 303 to /login; a staff member of
    the wrong role or session -> 403 page saying access is denied;
  - staff JSON (/api/v1/proctor): no staff session -> 401; wrong role or session -> 403;
  - taker pages (/ujian...): no taker cookie -> 303 to "/" (the taker login);
  - taker JSON (/api/v1/taker, the page's /ujian/jawaban and /ujian/status) -> 401 with code
    ``taker.error_login_again``;
- a denied request changes nothing: the audit log, answers, incidents, attempts and the
  session's state and settings are the same after it.

Every unsafe request carries a valid CSRF token of its caller, so a refusal is never the CSRF
check's (that one is tested in test_web.py and the route tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.auth.models import User
from app.bank.models import Item
from app.delivery.models import Answer, AnswerEvent, Attempt, AttemptItem
from app.main import api_routes
from app.proctoring.models import Incident
from app.programmes.models import KeyPosition, Programme
from app.sessions.models import ProctorAssignment, RosterEntry, TestSession
from tests.conftest import csrf_from, staff_login
from tests.factories import make_open_session

ROLES = ("anonymous", "taker_a", "taker_b", "proctor_x", "proctor_y", "admin")
TAKERS = frozenset({"taker_a", "taker_b"})
EVERYONE = frozenset(ROLES)
ADMIN = frozenset({"admin"})
STAFF = frozenset({"admin", "proctor_x", "proctor_y"})
SESSION_X_STAFF = frozenset({"admin", "proctor_x"})

# kind of answer a refusal gets (see the module docstring)
STAFF_HTML, STAFF_JSON, TAKER_PAGE, TAKER_JSON, PUBLIC = (
    "staff_html", "staff_json", "taker_page", "taker_json", "public")

# (method or "*", path prefix) -> (audience, who is allowed). Longest matching prefix wins;
# a method-specific rule beats "*" for the same prefix.
RULES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("*", "/admin"): (STAFF_HTML, ADMIN),
    ("GET", "/media/"): (STAFF_HTML, STAFF),  # item images: any staff member
    ("GET", "/proctor"): (STAFF_HTML, STAFF),  # a proctor's own list of sessions
    ("*", "/proctor/sessions/{code}"): (STAFF_HTML, SESSION_X_STAFF),
    ("*", "/api/v1/proctor/sessions/{code}"): (STAFF_JSON, SESSION_X_STAFF),
    ("*", "/ujian"): (TAKER_PAGE, TAKERS),
    ("*", "/ujian/jawaban/"): (TAKER_JSON, TAKERS),
    ("GET", "/ujian/status"): (TAKER_JSON, TAKERS),
    ("*", "/api/v1/taker"): (TAKER_JSON, TAKERS),
    # Public: the start and login pages, logout, language, health, API docs, taker logins.
    ("GET", "/"): (PUBLIC, EVERYONE),
    ("GET", "/login"): (PUBLIC, EVERYONE),
    ("POST", "/login"): (PUBLIC, EVERYONE),
    ("POST", "/logout"): (PUBLIC, EVERYONE),
    ("POST", "/lang"): (PUBLIC, EVERYONE),
    ("GET", "/healthz"): (PUBLIC, EVERYONE),
    # Prometheus on the server itself (CACT_METRICS_ALLOW_IPS, not the test client) or an admin.
    ("GET", "/metrics"): (STAFF_HTML, ADMIN),
    ("GET", "/docs"): (PUBLIC, EVERYONE),
    ("POST", "/ujian/masuk"): (PUBLIC, EVERYONE),
    ("POST", "/ujian/keluar"): (PUBLIC, EVERYONE),
    ("POST", "/api/v1/taker/login"): (PUBLIC, EVERYONE),
    # The room's score screen: no login; the unguessable key in its address admits.
    ("GET", "/papan/{code}/{key}"): (PUBLIC, EVERYONE),
}
# Exact-match rules: "/" and "/login" must not act as prefixes of everything.
EXACT = {("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("GET", "/proctor")}

# Routes that end the caller's login or attempt run last, so every other route is asked while
# every caller is still who they were.
LAST = [("POST", "/ujian/selesai"), ("POST", "/api/v1/taker/submit"),
        ("POST", "/api/v1/taker/logout"), ("POST", "/ujian/keluar"), ("POST", "/logout")]

# Form fields sent with a route (besides the CSRF token): when the empty form would change
# something the rest of the walk depends on, or when the route checks the caller's access to
# the session inside the handler, after FastAPI validated the form (an incomplete form then
# gets 422 before the 403; a complete one that changes nothing is sent instead).
EXTRA_FORM = {
    ("POST", "/proctor/sessions/{code}/papan"): {"enabled": "on"},
    ("POST", "/proctor/sessions/{code}/state"): {"action": "close"},  # no confirm: 422
}
JSON_BODY = {  # JSON routes: a well-formed body that the handler refuses without a change
    ("PUT", "/ujian/jawaban/{item_id}"): {"response": None, "seq": 1},
    ("PUT", "/api/v1/taker/answers/{item_id}"): {"response": None, "seq": 1},
    ("POST", "/api/v1/proctor/sessions/{code}/seats/{entry_id}"): {"action": "note",
                                                                   "reason": ""},
}


def rule_for(method: str, path: str) -> tuple[str, frozenset[str]]:
    best, best_key = None, None
    for (rule_method, prefix), rule in RULES.items():
        if rule_method not in ("*", method):
            continue
        exact = (rule_method, prefix) in EXACT
        if (path != prefix) if exact else not (path == prefix or path.startswith(
                prefix if prefix.endswith("/") else prefix + "/") or path.startswith(prefix)
                and prefix.endswith("/")):
            continue
        key = (len(prefix), rule_method != "*")
        if best_key is None or key > best_key:
            best, best_key = rule, key
    if best is None:
        pytest.fail(f"{method} {path} has no access rule in RULES: decide who may call it")
    return best


def test_every_prefix_rule_is_used_and_prefixes_match_by_segment():
    assert rule_for("GET", "/admin/sessions/{code}") == (STAFF_HTML, ADMIN)
    assert rule_for("GET", "/proctor/sessions/{code}/grid") == (STAFF_HTML, SESSION_X_STAFF)
    assert rule_for("GET", "/ujian/status") == (TAKER_JSON, TAKERS)
    assert rule_for("POST", "/ujian/masuk") == (PUBLIC, EVERYONE)
    with pytest.raises(pytest.fail.Exception):
        rule_for("GET", "/adminx")  # a prefix matches whole path segments only
    with pytest.raises(pytest.fail.Exception):
        rule_for("GET", "/reports/new")
    used = {rule_for(m, r.path) for r in api_routes() for m in r.methods - {"HEAD"}}
    assert set(RULES.values()) <= used | {(PUBLIC, EVERYONE)}


# -- the world: sessions X and Y, their takers and proctors ------------------------------------


class World:
    def __init__(self, app, database):
        self.app, self.database = app, database
        self.clients: dict[str, TestClient] = {}
        self.csrf: dict[str, str] = {}
        self.ids: dict[str, object] = {}

    # path parameter -> value, per name (and for "code", per part of the app)
    def resolve(self, name: str, path: str) -> str:
        resolvers: dict[str, Callable[[], object]] = {
            "code": lambda: (self.ids["bank_code"] if path.startswith("/admin/banks/")
                             else self.ids["blueprint_code"]
                             if path.startswith("/admin/blueprints/")
                             else self.ids["programme_code"]
                             if path.startswith("/admin/programmes/")
                             else self.ids["session_code"]),
            "fmt": lambda: "xlsx" if "talent-map" in path else "csv",
            "number": lambda: 1,  # the bank's first (and only) version
            "entry_id": lambda: self.ids["entry_a"],
            "item_id": lambda: self.ids["item_a"],
            "position": lambda: 1,
            "version_id": lambda: self.ids["version"],
            "bank_version_id": lambda: self.ids["version"],
            "name": lambda: "fig1.svg",
            "user_id": lambda: self.ids["spare_user"],  # a proctor no one else depends on
            "action": lambda: "note",  # with no reason: refused 422 by the handler
            # A key position's key; else the display screen's key, read when asked: switching
            # the screen makes a new one.
            "key": (lambda: "KADIS-X") if path.startswith("/admin/positions/")
            else self.display_key,
            "nip": lambda: self.ids["nip_scored"],  # a participant of X with a result
            # The session's (or the programme's) report archive, made ready.
            "job": lambda: (self.ids["programme_zip_job"] if path.startswith("/admin/programmes/")
                            else self.ids["zip_job"]),
        }
        if name not in resolvers:
            pytest.fail(f"no resolver for path parameter {{{name}}} of {path}: add one")
        return str(resolvers[name]())

    def display_key(self) -> str:
        with self.database.transaction(write=False) as db:
            settings = db.scalar(select(TestSession.settings).where(
                TestSession.code == self.ids["session_code"]))
        return (settings or {}).get("display_key", "none")

    def fingerprint(self) -> tuple:
        """What a denied request must not change."""
        with self.database.transaction(write=False) as db:
            counts = tuple(db.scalar(select(func.count()).select_from(model))
                           for model in (AuditEvent, Answer, AnswerEvent, Incident, Attempt,
                                         RosterEntry, User, ProctorAssignment))
            attempts = tuple(db.execute(select(Attempt.id, Attempt.state, Attempt.last_seq,
                                               Attempt.current_section,
                                               Attempt.access_token_hmac)
                                        .order_by(Attempt.id)).all())
            sessions = tuple((s.code, s.state, s.public_scores, repr(s.settings)) for s in
                             db.scalars(select(TestSession).order_by(TestSession.id)))
        return counts, attempts, sessions


@pytest.fixture
def world(app, database, settings, clock, make_user, monkeypatch):
    from app.proctoring import routes as proctor_routes

    # The console's event stream ends by itself after this long (normally minutes).
    monkeypatch.setattr(proctor_routes, "STREAM_MAX_S", 0.2)
    monkeypatch.setattr(proctor_routes, "STREAM_TICK_S", 0.05)
    # So does the taker page's stream (pause pushed to the page).
    from app.delivery import watch
    monkeypatch.setattr(watch, "STREAM_MAX_S", 0.2)
    w = World(app, database)
    passwords = {"admin": make_user("admin"), "proctor_x": make_user("pak.budi", "proctor"),
                 "proctor_y": make_user("bu.sri", "proctor")}
    make_user("spare.user", "proctor")
    with database.transaction() as db:
        x, logins_x = make_open_session(db, clock, secret=settings.resolved_secret(),
                                        participants=3, code="RUANG-X")
        y, _ = make_open_session(db, clock, secret=settings.resolved_secret(),
                                 participants=1, code="RUANG-Y", first=10)
        users = {u.username: u.id for u in db.scalars(select(User))}
        db.add(ProctorAssignment(session_id=x.id, user_id=users["pak.budi"]))
        db.add(ProctorAssignment(session_id=y.id, user_id=users["bu.sri"]))
        x.settings = {"display_key": "k" * 16}
        x.public_scores = True
        programme = Programme(code="PROG-X", name="Program X", created_at=clock.now())
        db.add(programme)
        db.add(KeyPosition(key="KADIS-X", name="Kepala Dinas X", job_key="administrator",
                           required={"integritas": 4}, created_at=clock.now()))
        db.flush()
        x.programme_id = programme.id
        w.ids.update(session_code=x.code, spare_user=users["spare.user"], bank_code="UJI-POT",
                     blueprint_code="BP-RUANG-X", programme_code=programme.code)

    usernames = {"admin": "admin", "proctor_x": "pak.budi", "proctor_y": "bu.sri"}
    for role in ROLES:
        client = TestClient(app)
        w.clients[role] = client
        if role in usernames:
            assert staff_login(client, usernames[role], passwords[role]).status_code == 303
            w.csrf[role] = csrf_from(client.get("/proctor").text)
        elif role in TAKERS:
            nip, token = logins_x[0 if role == "taker_a" else 1]
            page = client.get("/")
            login = client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                                      "csrf_token": csrf_from(page.text)},
                                follow_redirects=False)
            assert login.status_code == 303, login.text
            # The same access token also works as the API's bearer token.
            client.headers["Authorization"] = f"Bearer {client.cookies['cact_taker']}"
            w.csrf[role] = csrf_from(client.get("/login").text)
        else:
            w.csrf[role] = csrf_from(client.get("/login").text)

    # A third participant of X who has handed in and been scored: the individual report
    # routes ({nip}) need a result to show.
    done = TestClient(app)
    login = done.post("/api/v1/taker/login", json={"nip": logins_x[2][0],
                                                   "token": logins_x[2][1]})
    done.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    done.get("/api/v1/taker/attempt")
    assert done.post("/api/v1/taker/submit").json()["state"] == "submitted"
    w.ids["nip_scored"] = logins_x[2][0]
    admin = w.clients["admin"]
    if admin.get(f"/admin/sessions/{x.code}/results/{logins_x[2][0]}.pdf").status_code != 200:
        admin.post(f"/admin/sessions/{x.code}/results/rescore",
                   data={"csrf_token": w.csrf["admin"], "reason": "access matrix"})
    assert admin.get(f"/admin/sessions/{x.code}/results/{logins_x[2][0]}.pdf").status_code \
        == 200

    # A finished report archive of session X (its routes take the job's id).
    started = admin.post(f"/admin/sessions/{x.code}/reports",
                         data={"csrf_token": w.csrf["admin"]}, follow_redirects=False)
    assert started.status_code == 303, started.text
    w.ids["zip_job"] = started.headers["location"].rsplit("/", 1)[1]
    for _ in range(50):
        step = admin.post(f"/admin/sessions/{x.code}/reports/{w.ids['zip_job']}/step",
                          data={"csrf_token": w.csrf["admin"]})
        assert step.status_code == 200, step.text
        if admin.get(f"/admin/sessions/{x.code}/reports/{w.ids['zip_job']}.zip",
                     follow_redirects=False).status_code == 200:
            break
    else:
        pytest.fail("the report archive never finished")
    started = admin.post("/admin/programmes/PROG-X/reports", data={"csrf_token": w.csrf["admin"]},
                         headers={"HX-Request": "true"})
    assert started.status_code == 200, started.text
    w.ids["programme_zip_job"] = started.text.split("/admin/programmes/PROG-X/reports/", 1)[1] \
        .split("/", 1)[0]
    for _ in range(50):
        admin.post(f"/admin/programmes/PROG-X/reports/{w.ids['programme_zip_job']}/step",
                   data={"csrf_token": w.csrf["admin"]})
        if admin.get(f"/admin/programmes/PROG-X/reports/{w.ids['programme_zip_job']}.zip",
                     follow_redirects=False).status_code == 200:
            break
    else:
        pytest.fail("the programme's report archive never finished")

    with database.transaction(write=False) as db:
        attempt_a = db.scalar(select(Attempt).join(RosterEntry, RosterEntry.id ==
                                                   Attempt.roster_entry_id)
                              .where(RosterEntry.id == min(db.scalars(
                                  select(RosterEntry.id).where(
                                      RosterEntry.session_id == x.id)))))
        w.ids["entry_a"] = attempt_a.roster_entry_id
        item_id, version = db.execute(
            select(AttemptItem.item_id, Item.bank_version_id)
            .join(Item, Item.id == AttemptItem.item_id)
            .where(AttemptItem.attempt_id == attempt_a.id)
            .order_by(AttemptItem.position).limit(1)).one()
        w.ids.update(item_a=item_id, version=version)
    return w


def _ordered_routes() -> list[tuple[str, str]]:
    pairs = [(m, r.path) for r in api_routes() for m in sorted(r.methods - {"HEAD"})]
    assert len(pairs) >= 70
    return sorted(pairs, key=lambda p: (LAST.index(p) if p in LAST else -1, p[0] != "GET"))


def _call(world: World, role: str, method: str, template: str):
    path = re.sub(r"\{([^}]+)\}", lambda m: world.resolve(m.group(1), template), template)
    client = world.clients[role]
    token = world.csrf[role]
    if method in ("GET",):
        return client.get(path, follow_redirects=False)
    if (method, template) in JSON_BODY:
        return client.request(method, path, json=JSON_BODY[(method, template)],
                              headers={"X-CSRF-Token": token}, follow_redirects=False)
    data = {"csrf_token": token, **EXTRA_FORM.get((method, template), {})}
    return client.request(method, path, data=data, headers={"X-CSRF-Token": token},
                          follow_redirects=False)


def _reached(kind: str, method: str, path: str, role: str, response) -> None:
    where = (method, path, role, response.status_code, response.text[:300])
    assert response.status_code < 500, where
    if (method, path) in CREDENTIAL_CHECKS:
        # The form came without credentials: the handler answers "wrong name/NIP or
        # password/token" (401), then, after five tries from one address, "wait" (429).
        assert response.status_code in (401, 429), where
        assert CREDENTIAL_CHECKS[(method, path)] in response.text, where
        return
    assert response.status_code not in (401, 403, 404), where
    if 300 <= response.status_code < 400 and kind != PUBLIC:  # logout goes to /login
        location = response.headers["location"]
        assert not location.startswith("/login"), where
        if kind in (TAKER_PAGE, TAKER_JSON):
            assert location != "/", where


# Public logins answer a form without credentials with their own 401 (the login page again).
CREDENTIAL_CHECKS = {("POST", "/ujian/masuk"): 'data-testid="taker-login"',
                     ("POST", "/login"): 'data-testid="login-form"'}
FORBIDDEN_TEXT = "Akun Anda tidak berwenang membuka halaman ini."


def _denied(kind: str, method: str, path: str, role: str, response) -> None:
    where = (method, path, role, response.status_code, response.text[:300])
    has_staff_login = role in STAFF
    if kind == STAFF_HTML:
        if has_staff_login:
            assert response.status_code == 403 and FORBIDDEN_TEXT in response.text, where
        else:
            assert response.status_code == 303, where
            assert response.headers["location"].startswith("/login"), where
    elif kind == STAFF_JSON:
        if has_staff_login:
            assert response.status_code == 403, where
            assert response.json() == {"detail": "forbidden for this role"}, where
        else:
            assert response.status_code == 401, where
            assert response.json() == {"detail": "authentication required"}, where
    elif kind == TAKER_PAGE:
        assert response.status_code == 303 and response.headers["location"] == "/", where
    elif kind == TAKER_JSON:
        assert response.status_code == 401, where
        assert response.json()["code"] == "taker.error_login_again", where
    else:
        pytest.fail(f"public route denied? {where}")


def test_access_matrix(world):
    checked = {"allowed": 0, "denied": 0}
    for method, path in _ordered_routes():
        kind, allowed = rule_for(method, path)
        for role in ROLES:
            if role in allowed:
                response = _call(world, role, method, path)
                _reached(kind, method, path, role, response)
                checked["allowed"] += 1
            else:
                before = world.fingerprint()
                response = _call(world, role, method, path)
                _denied(kind, method, path, role, response)
                assert world.fingerprint() == before, (method, path, role, "changed data")
                checked["denied"] += 1
    assert checked["allowed"] > 100 and checked["denied"] > 200, checked


def test_a_taker_reaches_only_their_own_attempt(world, app, database):
    """The taker routes take the attempt from the caller's token, never from the address:
    taker B saving "A's" item writes B's attempt, and A's stays as it was."""
    a, b = world.clients["taker_a"], world.clients["taker_b"]
    a.get("/api/v1/taker/attempt")
    b.get("/api/v1/taker/attempt")
    item = world.ids["item_a"]
    with database.transaction(write=False) as db:
        kind = db.scalar(select(Item.kind).where(Item.id == item)).value
    option = 1  # the first option shown: a form names options by their place in it
    response = [option] if kind == "multiple" else option
    saved = b.put(f"/api/v1/taker/answers/{item}", json={"response": response, "seq": 3})
    assert saved.status_code == 200 and saved.json()["stored_seq"] == 3
    with database.transaction(write=False) as db:
        rows = db.execute(select(RosterEntry.id, Attempt.last_seq)
                          .join(Attempt, Attempt.roster_entry_id == RosterEntry.id)).all()
    seqs = dict(rows)
    assert seqs[world.ids["entry_a"]] == 0
    assert sorted(seqs.values()) == [0, 0, 3]  # A untouched, B saved, C handed in blank
