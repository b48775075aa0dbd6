"""The login throttle cannot be turned against the owner of an account or a NIP (security
review #13, findings 2-4): failures are counted per identifier and address and per address,
the taker at their own seat gets in, proctors and admins clear a block (audited), a password
check holds no write transaction, and throttled attempts become one audit row per identifier
and minute. Attacks come through the trusted proxy header, as on a lab server behind nginx.
Real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.audit import AuditEvent
from app.auth import gate
from app.auth.models import LoginThrottle, User
from app.auth.security import password_hasher
from app.sessions.models import Participant, ProctorAssignment, RosterEntry
from tests.conftest import csrf_from, run_coroutine, staff_login
from tests.factories import make_open_session


@pytest.fixture
def room(database, settings, clock, make_user):
    """An open session of three takers, assigned to the proctor pak.budi."""
    make_user("pak.budi", role="proctor")
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                            participants=3, code="RUANG-A")
        budi = db.scalar(select(User.id).where(User.username == "pak.budi"))
        db.add(ProctorAssignment(session_id=session.id, user_id=budi))
    return logins


def behind_proxy(app, address: str | None = None) -> TestClient:
    """A client reaching the app through the trusted proxy (127.0.0.1): the address the app
    sees is the X-Forwarded-For header (``address``), or the proxy's own when it sends none."""
    client = TestClient(ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1"),
                        client=("127.0.0.1", 40000))
    if address:
        client.headers["X-Forwarded-For"] = address
    return client


def api_login(client: TestClient, nip: str, token: str, seat: str = "PC-10"):
    return client.post("/api/v1/taker/login",
                       json={"nip": nip, "token": token, "workstation": seat})


def page_login(client: TestClient, nip: str, token: str):
    """The login page as a lab PC's browser uses it (the seat cookie comes with the page)."""
    page = client.get("/")
    return client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                             "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)


def audit_rows(database, action: str) -> list[AuditEvent]:
    with database.transaction(write=False) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.id)))


def test_two_attacker_addresses_cannot_keep_a_taker_out(app, room, clock):
    """The review's attack: two addresses send wrong tokens for the victim's NIP, waiting out
    every lock; the victim, at a lab PC, gets in on the first correct try at each moment the
    review found it locked (21, 38, 70, 130, 190 and 250 s)."""
    nip, token = room[0]
    attackers = [behind_proxy(app, "192.168.10.66"), behind_proxy(app, "192.168.10.67")]
    victim = behind_proxy(app, "192.168.10.21")
    refused = failures = 0
    elapsed = 0
    for checkpoint in (21, 38, 70, 130, 190, 250):
        while elapsed < checkpoint:
            for n, attacker in enumerate(attackers):
                status = api_login(attacker, nip, f"WRONG{elapsed:03d}{n}", "PC-66").status_code
                refused += status == 429
                failures += status == 401
            clock.advance(1)
            elapsed += 1
        response = api_login(victim, nip, token)
        assert response.status_code == 200, (checkpoint, response.text)
    assert refused > 0 and failures >= 10  # the attackers were slowed, not the victim


def test_a_proctor_is_not_kept_out_by_wrong_passwords_from_elsewhere(app, room, clock):
    attackers = [behind_proxy(app, f"192.168.10.{n}") for n in (66, 67, 68)]
    for second in range(200):
        for attacker in attackers:
            staff_login(attacker, "pak.budi", f"guess-{second}")
        clock.advance(1)
    owner = behind_proxy(app, "192.168.10.5")
    response = staff_login(owner, "pak.budi", "correct-horse-1")
    assert response.status_code == 303 and response.headers["location"] == "/proctor"


def test_the_taker_at_their_own_seat_gets_in_when_the_address_is_locked(app, room, database):
    """A proxy that passes no client address: every PC is 127.0.0.1. Wrong tokens from one PC
    lock that address for everyone, except the taker whose attempt is bound to their PC's seat
    cookie: they are counted under the seat."""
    nip, token = room[0]
    own_pc = behind_proxy(app)
    assert page_login(own_pc, nip, token).status_code == 303  # the attempt is bound here
    own_pc.post("/ujian/keluar", data={"csrf_token": csrf_from(own_pc.get("/ujian").text)})
    prankster = behind_proxy(app)
    statuses = [api_login(prankster, nip, f"WRONG{n:03d}", "PC-99").status_code
                for n in range(12)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    # The same address without the seat cookie waits, even with the right token ...
    assert api_login(behind_proxy(app), nip, token, "PC-98").status_code == 429
    # ... while the taker's own PC gets in on the first try.
    back = page_login(own_pc, nip, token)
    assert back.status_code == 303 and back.headers["location"] == "/ujian"
    # Wrong tokens from the seat itself are throttled too, under the seat's own counter.
    statuses = [page_login(own_pc, nip, f"WRONG{n:03d}").status_code for n in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    with database.transaction(write=False) as db:
        keys = set(db.scalars(select(LoginThrottle.key)))
    assert any(key.startswith(f"acctip:nip:{nip}|seat:seat-") for key in keys)


def test_a_proctor_clears_a_participants_block_from_the_console(app, client, room, database):
    nip, token = room[1]
    guesser = behind_proxy(app, "192.168.10.66")
    for n in range(8):
        api_login(guesser, nip, f"WRONG{n:03d}")
    assert api_login(guesser, nip, token).status_code == 429
    staff_login(client, "pak.budi", "correct-horse-1")
    console = client.get("/proctor/sessions/RUANG-A")
    assert "Login diblokir" in console.text  # the row asks for attention
    with database.transaction(write=False) as db:
        entry = db.scalar(select(RosterEntry.id).join(
            Participant, Participant.id == RosterEntry.participant_id)
            .where(Participant.nip == nip))
    panel = client.get(f"/proctor/sessions/RUANG-A/peserta/{entry}")
    assert 'data-testid="throttle-locks"' in panel.text and "192.168.10.66" in panel.text
    cleared = client.post(f"/proctor/sessions/RUANG-A/peserta/{entry}/clear_throttle",
                          data={"reason": "kartu sudah diperiksa",
                                "csrf_token": csrf_from(panel.text)},
                          headers={"HX-Request": "true"})
    assert cleared.status_code == 200 and "Blokir login dibuka" in cleared.text
    assert 'data-testid="throttle-locks"' not in cleared.text
    assert api_login(guesser, nip, token).status_code == 200
    row = audit_rows(database, "auth.throttle_cleared")[-1]
    assert row.actor == "user:pak.budi" and row.target == f"nip:{nip}"
    assert row.reason == "kartu sudah diperiksa" and row.data["counters"] >= 1


def test_an_admin_clears_an_account_and_an_address(app, client, room, make_user, database):
    admin_password = make_user("admin")
    guesser = behind_proxy(app, "192.168.10.66")
    for n in range(40):  # the account at this address, then the address itself, lock
        staff_login(guesser, "pak.budi" if n < 8 else f"nobody{n}", f"guess-{n}")
    assert staff_login(guesser, "pak.budi", "correct-horse-1").status_code == 429
    # A proctor cannot clear anything outside the console.
    proctor = behind_proxy(app, "192.168.10.5")
    staff_login(proctor, "pak.budi", "correct-horse-1")
    page = proctor.get("/proctor")
    denied = proctor.post("/admin/login-locks/clear", data={
        "address": "192.168.10.66", "csrf_token": csrf_from(page.text)})
    assert denied.status_code == 403
    staff_login(client, "admin", admin_password)
    users = client.get("/admin/users")
    assert 'data-testid="lock-acctip:pak.budi|192.168.10.66"' in users.text
    assert 'data-testid="lock-ip:192.168.10.66"' in users.text
    cleared = client.post("/admin/login-locks/clear", data={
        "identifier": "pak.budi", "csrf_token": csrf_from(users.text)})
    assert cleared.status_code == 200 and 'data-testid="lock-cleared"' in cleared.text
    assert "lock-acctip:pak.budi|" not in cleared.text
    # The address is still locked for every account, until the admin clears it too.
    assert staff_login(guesser, "pak.budi", "correct-horse-1").status_code == 429
    client.post("/admin/login-locks/clear", data={
        "address": "192.168.10.66", "csrf_token": csrf_from(cleared.text)})
    assert staff_login(guesser, "pak.budi", "correct-horse-1").status_code == 303
    rows = audit_rows(database, "auth.throttle_cleared")
    assert [(r.actor, r.target) for r in rows] == [
        ("user:admin", "user:pak.budi"), ("user:admin", "addr:192.168.10.66")]


def test_throttled_attempts_are_one_audit_row_per_identifier_and_minute(app, room, clock,
                                                                       database):
    nip, _ = room[0]
    flooders = [behind_proxy(app, "192.168.10.66"), behind_proxy(app, "192.168.10.67")]
    sent = {"refused": 0}
    for second in range(150):
        for attacker in flooders:
            for n in range(4):
                status = api_login(attacker, nip, f"WRONG{second:03d}{n}").status_code
                sent["refused"] += status == 429
        clock.advance(1)
        if second % 15 == 14:  # what the server's background loop does every 15 s
            run_coroutine(gate.flush_refusals(app))
    run_coroutine(gate.flush_refusals(app, everything=True))
    assert audit_rows(database, "taker.login_failed")  # the failures themselves stay
    rows = audit_rows(database, "taker.login_throttled")
    assert 2 <= len(rows) <= 4  # 150 s: one row per started minute, not one per refusal
    assert sum(r.data["count"] for r in rows) == sent["refused"] > 1000
    assert all(r.target == f"nip:{nip}" and r.actor == "addr:several" for r in rows)
    assert sorted(rows[0].data["addresses"]) == ["192.168.10.66", "192.168.10.67"]


def test_a_wrong_password_is_checked_with_no_write_transaction_open(app, make_user, database,
                                                                   settings):
    """The password check of a failed login (slow here on purpose) must not hold the write
    slot: a write that starts meanwhile finishes long before the check does."""
    make_user("admin")
    app.state.password_hasher = password_hasher(160, 19456, 1)  # ~80x the normal cost
    with database.transaction() as db:  # the stored hash at the same cost, as after a rehash
        db.scalar(select(User).where(User.username == "admin")).password_hash = \
            app.state.password_hasher.hash("correct-horse-1")
    started = threading.Event()
    timing = {}

    def failed_login() -> None:
        client = behind_proxy(app, "192.168.10.66")
        page = client.get("/login")
        started.set()
        begin = time.monotonic()
        response = client.post("/login", data={"username": "admin", "password": "wrong-guess",
                                               "csrf_token": csrf_from(page.text)})
        timing["login"] = time.monotonic() - begin
        timing["status"] = response.status_code

    thread = threading.Thread(target=failed_login)
    thread.start()
    started.wait(10)
    time.sleep(0.3)  # the login is now inside the password check
    begin = time.monotonic()
    with database.transaction() as db:
        db.add(LoginThrottle(key="ip:write-probe", failures=0,
                             window_start=app.state.clock.now()))
    write_s = time.monotonic() - begin
    thread.join(60)
    assert timing["status"] == 401
    assert timing["login"] > 1.0, timing  # the check really was slow
    assert write_s < timing["login"] / 4, (write_s, timing)
