"""Staff login, sessions, CSRF, throttling and role checks over real HTTP on both backends."""

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit import AuditEvent
from app.auth.models import User, WebSession
from app.auth.security import password_hasher
from app.web import SESSION_COOKIE
from tests.conftest import csrf_from, staff_login


def set_cookie_header(response, name):
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no Set-Cookie for {name}")


def fresh_browser_with(app, token):
    """A new browser that carries only the given session cookie (replay, fixation)."""
    return TestClient(app, cookies={SESSION_COOKIE: token})


def audit_actions(database):
    with database.transaction(write=False) as s:
        return [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_admin_logs_in_and_sees_the_dashboard(client, make_user, database):
    password = make_user("admin")
    response = staff_login(client, "admin", password)
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = set_cookie_header(response, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 256 random bits, URL-safe
    page = client.get("/admin")
    assert page.status_code == 200 and 'data-testid="dashboard-stats"' in page.text
    assert "auth.login" in audit_actions(database)
    with database.transaction(write=False) as s:  # only a digest of the cookie is stored
        assert s.scalar(select(WebSession.id)) != token


def test_wrong_password_is_refused_and_audited(client, make_user, database):
    make_user("admin")
    response = staff_login(client, "admin", "wrong-password")
    assert response.status_code == 401
    assert 'data-testid="login-error"' in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert audit_actions(database)[-1] == "auth.login_failed"
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https(app, make_user):
    password = make_user("admin")
    with TestClient(app, base_url="https://cact.local") as secure_client:
        response = staff_login(secure_client, "admin", password)
        assert "Secure" in set_cookie_header(response, SESSION_COOKIE)


def test_session_id_is_rotated_at_login(app, client, make_user):
    password = make_user("admin")
    first = set_cookie_header(staff_login(client, "admin", password), SESSION_COOKIE)
    second = set_cookie_header(staff_login(client, "admin", password), SESSION_COOKIE)
    first, second = (c.split(";")[0].split("=", 1)[1] for c in (first, second))
    assert first != second
    assert fresh_browser_with(app, first).get("/admin", follow_redirects=False).status_code == 303
    assert fresh_browser_with(app, second).get("/admin", follow_redirects=False).status_code == 200


def test_planted_session_cookie_is_never_adopted(app, make_user):
    password = make_user("admin")
    victim = fresh_browser_with(app, "attacker-chosen-value")
    response = staff_login(victim, "admin", password)
    issued = set_cookie_header(response, SESSION_COOKIE).split(";")[0].split("=", 1)[1]
    assert issued != "attacker-chosen-value"
    attacker = fresh_browser_with(app, "attacker-chosen-value")
    assert attacker.get("/admin", follow_redirects=False).status_code == 303


def test_logout_really_ends_the_session(client, make_user):
    password = make_user("admin")
    staff_login(client, "admin", password)
    token = client.cookies.get(SESSION_COOKIE)
    page = client.get("/admin")
    response = client.post("/logout", data={"csrf_token": csrf_from(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    replay = fresh_browser_with(client.app, token)  # replaying the old cookie does not work
    assert replay.get("/admin", follow_redirects=False).headers["location"] == "/login?next=/admin"


def test_idle_and_absolute_timeouts(client, make_user, clock):
    password = make_user("admin")
    staff_login(client, "admin", password)
    for _ in range(3):  # activity every 20 minutes keeps an idle limit of 30 minutes at bay
        clock.advance(20 * 60)
        assert client.get("/admin", follow_redirects=False).status_code == 200
    clock.advance(31 * 60)
    assert client.get("/admin", follow_redirects=False).status_code == 303
    staff_login(client, "admin", password)
    for _ in range(36):  # 12 hours of steady activity
        clock.advance(20 * 60)
        client.get("/admin")
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_post_without_or_with_foreign_csrf_token_is_refused(client, app, make_user, database):
    password = make_user("admin")
    no_token = client.post("/login", data={"username": "admin", "password": password},
                           follow_redirects=False)
    assert no_token.status_code == 403 and SESSION_COOKIE not in client.cookies
    staff_login(client, "admin", password)
    with TestClient(app) as other_browser:
        foreign = csrf_from(other_browser.get("/login").text)
    form = {"username": "mallory", "password": "long-enough-pw", "role": "admin"}
    assert client.post("/admin/users", data=form).status_code == 403
    assert client.post("/admin/users", data={**form, "csrf_token": foreign}).status_code == 403
    with database.transaction(write=False) as s:
        assert s.scalar(select(User).where(User.username == "mallory")) is None
    good = csrf_from(client.get("/admin/users").text)
    assert client.post("/admin/users", headers={"X-CSRF-Token": good}, data=form).status_code == 200


def test_proctor_cannot_open_admin_pages(client, make_user):
    password = make_user("pak.budi", role="proctor")
    response = staff_login(client, "pak.budi", password)
    assert response.headers["location"] == "/proctor"
    for path in ("/admin", "/admin/users", "/admin/audit"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert 'data-testid="error-message"' in page.text
    assert client.get("/proctor").status_code == 200
    token = csrf_from(client.get("/proctor").text)
    created = client.post("/admin/users", data={"csrf_token": token, "username": "x1",
                                                "password": "long-enough-pw", "role": "admin"})
    assert created.status_code == 403


def test_burst_of_wrong_passwords_is_throttled(app, make_user, database):
    password = make_user("admin")
    with TestClient(app, client=("10.1.1.66", 40000)) as attacker:
        statuses = [staff_login(attacker, "admin", f"guess-{i}").status_code
                    for i in range(20)]
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429] * 15
        refused = staff_login(attacker, "admin", password)  # even the right password waits
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "Tunggu" in refused.text
        assert SESSION_COOKIE not in attacker.cookies
        # A refusal writes nothing at once (a flood of them must not flood the audit log).
        assert audit_actions(database).count("auth.login_throttled") == 0
    # The server stopping writes the tally: one row for the 16 refusals, with the count.
    actions = audit_actions(database)
    assert actions.count("auth.login_failed") == 5 and actions.count("auth.login_throttled") == 1
    with database.transaction(write=False) as s:
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login_throttled"))
    assert row.target == "user:admin" and row.actor == "addr:10.1.1.66"
    assert row.data["count"] == 16 and row.data["addresses"] == ["10.1.1.66"]


def test_patient_guesser_is_slowed_but_the_owner_is_never_locked_out_long(app, make_user, clock):
    password = make_user("admin")
    attacker = TestClient(app, client=("10.1.1.66", 40000))
    owner = TestClient(app, client=("10.1.1.10", 40001))
    started = clock.now()
    guesses = 0
    while guesses < 20:  # the attacker waits out every lock and keeps guessing
        response = staff_login(attacker, "admin", f"guess-{guesses}")
        if response.status_code == 429:
            clock.advance(int(response.headers["Retry-After"]))
            continue
        assert response.status_code == 401
        guesses += 1
    assert clock.now() - started > timedelta(hours=1)  # 20 guesses took over an hour
    # The owner, at another PC, waits a minute at most even right after the attack.
    response = staff_login(owner, "admin", password)
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) <= 60
        clock.advance(int(response.headers["Retry-After"]))
        response = staff_login(owner, "admin", password)
    assert response.status_code == 303
    # The guessing address itself stays slowed down (up to 15 minutes per try).
    assert staff_login(attacker, "admin", "guess-x").status_code == 429


def test_unknown_usernames_are_throttled_too(app, clock):
    guesser = TestClient(app, client=("10.9.9.9", 1))
    statuses = [staff_login(guesser, "nobody", "x").status_code for _ in range(8)]
    assert 429 in statuses


def test_stored_hash_is_argon2id_and_rehashed_when_parameters_rise(
    client, app, make_user, database
):
    password = make_user("admin")
    with database.transaction(write=False) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "admin"))
    assert re.match(r"^\$argon2id\$v=19\$m=19456,t=2,p=1\$", stored)
    app.state.password_hasher = password_hasher(3, 19456, 1)  # an upgrade raised the cost
    assert staff_login(client, "admin", password).status_code == 303
    with database.transaction(write=False) as s:
        rehashed = s.scalar(select(User.password_hash).where(User.username == "admin"))
    assert rehashed.startswith("$argon2id$v=19$m=19456,t=3,p=1$")


def test_next_parameter_only_follows_local_paths(client, make_user):
    password = make_user("admin")
    assert staff_login(client, "admin", password, next="/admin/audit").headers["location"] \
        == "/admin/audit"
    client.cookies.clear()
    assert staff_login(client, "admin", password, next="https://evil.example/").headers[
        "location"] == "/admin"
    client.cookies.clear()
    assert staff_login(client, "admin", password, next="//evil.example").headers[
        "location"] == "/admin"


def test_admin_creates_a_proctor_account(client, make_user, database):
    password = make_user("admin")
    staff_login(client, "admin", password)
    token = csrf_from(client.get("/admin/users").text)
    form = {"csrf_token": token, "username": "Bu.Ani", "full_name": "Ani Wulandari",
            "role": "proctor", "password": "ruang-lab-2026"}
    created = client.post("/admin/users", data=form)
    assert created.status_code == 200 and 'data-testid="user-created"' in created.text
    again = client.post("/admin/users", data=form)
    assert again.status_code == 422 and "sudah dipakai" in again.text
    short = client.post("/admin/users", data={**form, "username": "pak.edi", "password": "short"})
    assert short.status_code == 422 and "minimal 10" in short.text
    with database.transaction(write=False) as s:
        assert s.scalar(select(User.role).where(User.username == "bu.ani")).value == "proctor"
    assert "user.create" in audit_actions(database)
    client.cookies.clear()
    assert staff_login(client, "bu.ani", "ruang-lab-2026").headers["location"] == "/proctor"


def test_admin_disables_and_reenables_an_account(app, client, make_user, database):
    staff_login(client, "admin", make_user("admin"))
    proctor_password = make_user("pak.budi", role="proctor")
    proctor = TestClient(app, client=("10.2.2.2", 1))
    staff_login(proctor, "pak.budi", proctor_password)
    assert proctor.get("/proctor").status_code == 200
    with database.transaction(write=False) as s:
        proctor_id = s.scalar(select(User.id).where(User.username == "pak.budi"))
        admin_id = s.scalar(select(User.id).where(User.username == "admin"))
    token = csrf_from(client.get("/admin/users").text)
    done = client.post(f"/admin/users/{proctor_id}/active",
                       data={"csrf_token": token, "active": "false", "reason": "event over"})
    assert done.status_code == 200 and "nonaktif" in done.text
    assert proctor.get("/proctor", follow_redirects=False).status_code == 303  # session ended
    assert staff_login(proctor, "pak.budi", proctor_password).status_code == 401
    myself = client.post(f"/admin/users/{admin_id}/active",
                         data={"csrf_token": token, "active": "false"})
    assert myself.status_code == 422 and "sendiri" in myself.text
    client.post(f"/admin/users/{proctor_id}/active", data={"csrf_token": token, "active": "true"})
    assert staff_login(proctor, "pak.budi", proctor_password).status_code == 303
    actions = audit_actions(database)
    assert "user.disable" in actions and "user.enable" in actions


def test_admin_resets_a_password(app, client, make_user, database):
    staff_login(client, "admin", make_user("admin"))
    make_user("pak.budi", role="proctor", password="old-password-1")
    with database.transaction(write=False) as s:
        proctor_id = s.scalar(select(User.id).where(User.username == "pak.budi"))
    token = csrf_from(client.get("/admin/users").text)
    short = client.post(f"/admin/users/{proctor_id}/password",
                        data={"csrf_token": token, "password": "short"})
    assert short.status_code == 422
    done = client.post(f"/admin/users/{proctor_id}/password",
                       data={"csrf_token": token, "password": "new-password-22"})
    assert done.status_code == 200 and 'data-testid="password-reset"' in done.text
    other = TestClient(app)
    assert staff_login(other, "pak.budi", "old-password-1").status_code == 401
    assert staff_login(other, "pak.budi", "new-password-22").status_code == 303
    assert client.post("/admin/users/999/password",
                       data={"csrf_token": token, "password": "new-password-22"}
                       ).status_code == 404
    assert "user.set_password" in audit_actions(database)
