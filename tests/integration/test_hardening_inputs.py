"""Security review #13: (11) huge or non-finite numbers from the client are a 422, never a 500;
(8) taker logout ends the access token on the server. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit import AuditEvent
from tests.conftest import csrf_from, staff_login
from tests.factories import make_open_session

HUGE = "99999999999999999999"


@pytest.fixture
def logins(database, settings, clock):
    with database.transaction() as session:
        _, logins = make_open_session(session, clock, secret=settings.resolved_secret(),
                                      participants=2)
    return logins


def raw_json(client, method, url, body: str, **headers):
    # json= would refuse 1e999; the attack sends the text as is.
    return client.request(method, url, content=body,
                          headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("body", [
    '{"nip": 1e999, "token": null}',
    '{"nip": "1", "token": 1e999}',
    '{"nip": -1e999, "token": "x"}',
    '{"nip": "1", "token": "x", "workstation": 1e999}',
    '{"nip": NaN, "token": "x"}',
])
def test_taker_login_with_non_finite_or_wrong_types_is_422(client, logins, body):
    response = raw_json(client, "POST", "/api/v1/taker/login", body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("body", [
    '{"response": 1e999, "seq": 1}',
    '{"response": -1e999, "seq": 1}',
    '{"response": [1e999], "seq": 1}',
    '{"response": NaN, "seq": 1}',
    '{"response": 1, "seq": 1e999}',
    '{"response": 1, "seq": ' + HUGE + '}',
    '{"response": ' + HUGE + ', "seq": 1}',
])
def test_answer_with_non_finite_or_huge_numbers_is_422(app, logins, body):
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": logins[0][0], "token": logins[0][1], "workstation": "PC-1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    form = client.get("/api/v1/taker/attempt").json()
    item = form["items"][0]["item_id"]
    for url in (f"/api/v1/taker/answers/{item}", "/api/v1/taker/answers/1"):
        response = raw_json(client, "PUT", url, body)
        assert response.status_code == 422, (url, response.text)


def test_answer_without_login_and_non_finite_numbers_is_422(client, logins):
    response = raw_json(client, "PUT", "/api/v1/taker/answers/1", '{"response": 1e999, "seq": 1}')
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("query", [f"page={HUGE}", "page=-" + HUGE, "page=0", "page=1e999"])
def test_bank_items_page_out_of_range_is_422(client, logins, make_user, query, database):
    from app.bank.models import BankVersion, ItemBank

    make_user("admin1")
    assert staff_login(client, "admin1", "correct-horse-1").status_code == 303
    with database.transaction(write=False) as s:
        code, number = s.execute(select(ItemBank.code, BankVersion.version)
                                 .join(BankVersion, BankVersion.bank_id == ItemBank.id)).first()
    assert client.get(f"/admin/banks/{code}/v/{number}?page=2").status_code == 200
    response = client.get(f"/admin/banks/{code}/v/{number}?{query}")
    assert response.status_code == 422, response.text[:300]


@pytest.mark.parametrize("before", [HUGE, "-" + HUGE, "0", "1e999"])
def test_audit_before_out_of_range_is_422(client, make_user, before):
    make_user("admin1")
    assert staff_login(client, "admin1", "correct-horse-1").status_code == 303
    assert client.get("/admin/audit?before=5").status_code == 200
    response = client.get(f"/admin/audit?before={before}")
    assert response.status_code == 422, response.text[:300]


def page_login(client, nip, token):
    page = client.get("/")
    return client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                             "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)


def test_taker_logout_ends_the_access_token_and_the_same_pc_can_log_in_again(
        app, client, logins, database):
    from app.delivery.deps import TAKER_COOKIE

    nip, token = logins[0]
    assert page_login(client, nip, token).status_code == 303
    page = client.get("/ujian")
    started = client.post("/ujian/mulai", data={"csrf_token": csrf_from(page.text)},
                          follow_redirects=True)
    assert 'data-testid="taker-item"' in started.text
    old = client.cookies.get(TAKER_COOKIE)
    assert old
    out = client.post("/ujian/keluar", data={"csrf_token": csrf_from(started.text)},
                      follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/"

    # The old cookie value, replayed by another browser, gets the login page, not the item.
    replay = TestClient(app)
    replay.cookies.set(TAKER_COOKIE, old)
    item = replay.get("/ujian/soal/1", follow_redirects=False)
    assert item.status_code == 303 and item.headers["location"] == "/"
    assert replay.get("/ujian/status").status_code == 401
    # ... and as a bearer token the API answers 401.
    api = TestClient(app, headers={"Authorization": f"Bearer {old}"})
    assert api.get("/api/v1/taker/status").status_code == 401
    assert api.get("/api/v1/taker/attempt").status_code == 401
    with database.transaction(write=False) as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-1] == "taker.logout"

    # The seat binding stays: the taker can log in again with NIP + token on the same PC
    # (same seat cookie) and continues where they were; another PC is still refused.
    other_pc = TestClient(app)
    assert page_login(other_pc, nip, token).status_code == 409
    again = page_login(client, nip, token)
    assert again.status_code == 303 and again.headers["location"] == "/ujian"
    assert client.cookies.get(TAKER_COOKIE) not in (None, old)
    assert 'data-testid="taker-item"' in client.get("/ujian/soal/1").text


def test_the_api_logout_ends_the_bearer_token(app, logins, database):
    nip, token = logins[0]
    api = TestClient(app)
    login = api.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                  "workstation": "PC-07"})
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert api.get("/api/v1/taker/status", headers=bearer).status_code == 200
    out = api.post("/api/v1/taker/logout", headers=bearer)
    assert out.status_code == 204
    assert api.get("/api/v1/taker/status", headers=bearer).status_code == 401
    assert api.post("/api/v1/taker/logout", headers=bearer).status_code == 401
    with database.transaction(write=False) as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions.count("taker.logout") == 1
    # The seat stays bound: the same workstation logs in again, another one is refused.
    assert api.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                 "workstation": "PC-08"}).status_code == 409
    assert api.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                 "workstation": "PC-07"}).status_code == 200
