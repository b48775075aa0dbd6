"""The taker over real HTTP: the JSON API (login, form, autosave, sections, submit) and the
pages (login, instructions, item page, no-JS save, CSRF), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import gate
from app.bank.models import Item, ItemOption
from app.delivery.models import Answer
from app.sessions.models import SessionState, TestSession
from tests.conftest import csrf_from, run_coroutine
from tests.factories import make_open_session


@pytest.fixture
def logins(database, settings, clock):
    with database.transaction() as session:
        _, logins = make_open_session(session, clock, secret=settings.resolved_secret(),
                                      participants=3)
    return logins


def api_login(app, nip, token, workstation="PC-01"):
    client = TestClient(app)
    response = client.post("/api/v1/taker/login",
                           json={"nip": nip, "token": token, "workstation": workstation})
    return client, response


def bearer(client, response):
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def answer_for(item, index=0):
    option = item["options"][index]["id"]
    return [option] if item["kind"] == "multiple" else option


def test_api_full_attempt(app, logins, database, clock):
    nip, token = logins[0]
    client, response = api_login(app, nip, token)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "not_started" and response.json()["session_code"] == "S1"
    bearer(client, response)
    form = client.get("/api/v1/taker/attempt").json()
    assert form["state"] == "active" and form["remaining_s"] == 600
    assert [s["state"] for s in form["sections"]] == ["open", "pending"]
    first, later = form["items"][0], form["items"][3]
    assert first["stem"] and later["stem"] is None and later["options"] == []
    put = client.put(f"/api/v1/taker/answers/{first['item_id']}",
                     json={"response": answer_for(first), "seq": 5, "flagged": True})
    assert put.status_code == 200 and put.json()["stored_seq"] == 5 and put.json()["accepted"]
    stale = client.put(f"/api/v1/taker/answers/{first['item_id']}",
                       json={"response": answer_for(first, 1), "seq": 4})
    assert stale.json() == {**stale.json(), "stored_seq": 5, "accepted": False}
    assert client.put(f"/api/v1/taker/answers/{first['item_id']}",
                      json={"response": 10**9, "seq": 6}).status_code == 422
    assert client.put("/api/v1/taker/answers/999999", json={"response": None, "seq": 7}
                      ).status_code == 404
    closed = client.put(f"/api/v1/taker/answers/{later['item_id']}",
                        json={"response": None, "seq": 8})
    assert closed.status_code == 409 and closed.json()["code"] == "taker.error_section_pending"
    again = client.get("/api/v1/taker/attempt").json()
    stored = next(i for i in again["items"] if i["item_id"] == first["item_id"])
    assert (stored["response"], stored["seq"], stored["flagged"]) == (answer_for(first), 5, True)
    clock.advance(30)
    assert client.post("/api/v1/taker/sections/next").json()["current_section"] == 1
    assert client.post("/api/v1/taker/sections/next").status_code == 409  # last section
    done = client.post("/api/v1/taker/submit")
    assert done.status_code == 200 and done.json()["state"] == "submitted"
    assert client.post("/api/v1/taker/submit").json()["state"] == "submitted"  # idempotent
    assert client.put(f"/api/v1/taker/answers/{later['item_id']}",
                      json={"response": None, "seq": 9}).status_code == 409


def test_keys_weights_and_parameters_never_reach_the_taker(app, logins, database):
    client, response = api_login(app, *logins[0])
    bearer(client, response)
    wire = client.get("/api/v1/taker/attempt").text

    def keys_of(value):
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys_of(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys_of(v)}
        return set()

    fields = keys_of(json.loads(wire))
    assert not fields & {"is_key", "key", "weight", "weights", "points", "level", "irt", "irt_a",
                         "irt_b", "irt_c", "scoring", "label", "code", "construct"}, fields
    for secret in ('"is_key"', '"weight"', '"irt', "scoring"):
        assert secret not in wire
    shown = [i for i in json.loads(wire)["items"] if i["stem"] is not None]
    with database.transaction(write=False) as s:
        for item in shown:  # every option is there (keyed ones too), just not marked
            count = len(s.scalars(select(ItemOption.id).where(
                ItemOption.item_id == item["item_id"])).all())
            assert [o["id"] for o in item["options"]] == list(range(1, count + 1))


def test_api_login_errors(app, logins, database):
    nip, token = logins[0]
    assert api_login(app, nip, "WRONGTKN")[1].status_code == 401
    assert api_login(app, "1" * 18, token)[1].status_code == 401
    ok_client, ok = api_login(app, nip, token, "PC-01")
    assert ok.status_code == 200
    seat = api_login(app, nip, token, "PC-02")[1]
    assert seat.status_code == 409 and "another computer" in seat.json()["detail"]
    with database.transaction() as s:
        s.scalar(select(TestSession)).state = SessionState.closed
    assert api_login(app, nip, token, "PC-01")[1].status_code == 403


def test_failed_logins_are_counted_across_requests(app, logins, database):
    nip, token = logins[0]
    statuses = [api_login(app, nip, f"WRONG{n:03d}")[1].status_code for n in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    refused = api_login(app, nip, token)[1]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # The 4 refusals are tallied and written as one audit row with their count.
    assert run_coroutine(gate.flush_refusals(app, everything=True)) == 1
    with database.transaction(write=False) as s:
        from app.audit import AuditEvent

        events = list(s.scalars(select(AuditEvent)))
    actions = [e.action for e in events]
    assert actions.count("taker.login_failed") == 5 and actions.count("taker.login_throttled") == 1
    assert next(e for e in events if e.action == "taker.login_throttled").data["count"] == 4


def test_a_moved_seat_can_no_longer_save(app, logins, database):
    nip, token = logins[0]
    old, response = api_login(app, nip, token, "PC-01")
    bearer(old, response)
    item = old.get("/api/v1/taker/attempt").json()["items"][0]
    with database.transaction() as s:  # the proctor unlocks the attempt
        from app.delivery.models import Attempt

        s.scalar(select(Attempt)).workstation_id = None
    new, response = api_login(app, nip, token, "PC-07")
    bearer(new, response)
    assert old.put(f"/api/v1/taker/answers/{item['item_id']}",
                   json={"response": answer_for(item), "seq": 1}).status_code == 401
    assert new.put(f"/api/v1/taker/answers/{item['item_id']}",
                   json={"response": answer_for(item), "seq": 1}).status_code == 200


def test_api_needs_a_token(client):
    assert client.get("/api/v1/taker/attempt").status_code == 401
    assert client.put("/api/v1/taker/answers/1", json={"response": None, "seq": 1}
                      ).status_code == 401


def page_login(client, nip, token):
    page = client.get("/")
    assert 'data-testid="taker-login"' in page.text
    return client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                             "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)


def test_pages_from_login_to_finish(client, logins, database):
    nip, token = logins[0]
    wrong = page_login(client, nip, "WRONGTKN")
    assert wrong.status_code == 401 and "NIP atau token salah" in wrong.text
    response = page_login(client, nip, token)
    assert response.status_code == 303 and response.headers["location"] == "/ujian"
    instructions = client.get("/ujian")
    assert 'data-testid="start-exam"' in instructions.text
    started = client.post("/ujian/mulai", data={"csrf_token": csrf_from(instructions.text)},
                          follow_redirects=True)
    assert 'data-testid="taker-item"' in started.text and 'data-testid="nav-grid"' in started.text
    assert 'data-remaining="600"' in started.text
    for secret in ("is-key", "bobot", "option-key"):
        assert secret not in started.text
    token_value = csrf_from(started.text)
    item_id = int(started.text.split('data-item="')[1].split('"')[0])
    # The page names an option by its place in this taker's order, not by its database id.
    option = int(started.text.split('name="response" value="')[1].split('"')[0])
    with database.transaction(write=False) as s:
        kind = s.scalar(select(Item.kind).where(Item.id == item_id)).value
    response_value = [option] if kind == "multiple" else option
    no_csrf = client.put(f"/ujian/jawaban/{item_id}", json={"response": response_value, "seq": 1})
    assert no_csrf.status_code == 403
    saved = client.put(f"/ujian/jawaban/{item_id}", json={"response": response_value, "seq": 1},
                       headers={"X-CSRF-Token": token_value})
    assert saved.status_code == 200 and saved.json()["stored_seq"] == 1
    # Without JavaScript the form posts back; the server numbers the save after the last one.
    fallback = client.post("/ujian/soal/1", data={"csrf_token": token_value,
                                                  "response": str(option), "go": "2"},
                           follow_redirects=False)
    assert fallback.headers["location"] == "/ujian/soal/2"
    status = client.get("/ujian/status").json()
    assert status["state"] == "active" and status["remaining_s"] == 600
    finished = client.post("/ujian/selesai", data={"csrf_token": token_value},
                           follow_redirects=True)
    assert 'data-testid="finished"' in finished.text
    with database.transaction(write=False) as s:
        assert s.scalar(select(Answer.seq)) >= 1


def test_item_images_are_served_only_to_their_takers(client, app, logins, database):
    page_login(client, *logins[0])
    page = client.get("/ujian")
    client.post("/ujian/mulai", data={"csrf_token": csrf_from(page.text)})
    with database.transaction(write=False) as s:
        version = s.scalar(select(Item.bank_version_id))
    assert client.get(f"/ujian/media/{version}/fig1.svg").status_code == 200
    assert client.get(f"/ujian/media/{version + 1}/fig1.svg").status_code == 404
    stranger = TestClient(app)
    assert stranger.get(f"/ujian/media/{version}/fig1.svg", follow_redirects=False
                        ).status_code == 303


def test_the_server_closes_attempts_when_no_browser_asks(database, settings, clock, tmp_path):
    import time

    from app.delivery.models import Attempt
    from app.main import create_app

    quick = settings.model_copy(update={"sweep_interval_s": 1})
    with database.transaction() as session:
        _, logins = make_open_session(session, clock, secret=settings.resolved_secret())
    app = create_app(quick, clock=clock, database=database)
    with TestClient(app) as client:
        response = client.post("/api/v1/taker/login", json={"nip": logins[0][0],
                                                            "token": logins[0][1]})
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        client.get("/api/v1/taker/attempt")  # starts the clock; then the browser is gone
        clock.advance(16 * 60)
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline:
            with database.transaction(write=False) as s:
                state = s.scalar(select(Attempt.state)).value
            if state == "expired":
                break
            time.sleep(0.2)
    assert state == "expired"


def test_concurrent_saves_are_committed_together_and_each_acknowledged(app, logins, database):
    """Group commit: saves arriving together share one transaction; every acknowledgement is
    for data already committed, and a refused save does not take the others down."""
    import asyncio

    import httpx2

    clients = []
    for nip, token in logins:
        client, response = api_login(app, nip, token, workstation=f"PC-{nip}")
        bearer(client, response)
        items = [i for i in client.get("/api/v1/taker/attempt").json()["items"] if i["stem"]]
        clients.append((response.json()["access_token"], items))
    batcher = app.state.save_batcher
    commits_before, saves_before = batcher.commits, batcher.saves

    async def burst():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            calls = []
            for token, items in clients:
                for seq, item in enumerate(items, start=1):
                    calls.append(http.put(f"/api/v1/taker/answers/{item['item_id']}",
                                          json={"response": answer_for(item), "seq": seq},
                                          headers={"Authorization": f"Bearer {token}"}))
                calls.append(http.put("/api/v1/taker/answers/1",
                                      json={"response": 12345, "seq": 99},
                                      headers={"Authorization": f"Bearer {token}"}))
            return await asyncio.gather(*calls)

    # A thread of its own: the browser tests' Playwright may own this thread's event loop.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        responses = pool.submit(lambda: asyncio.run(burst())).result()
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 3 * 3 and statuses.count(404) + statuses.count(422) == 3
    assert batcher.saves - saves_before == 12
    assert batcher.commits - commits_before < 12  # some saves shared a commit
    with database.transaction(write=False) as s:
        assert len(s.scalars(select(Answer)).all()) == 9


def test_saves_around_a_deadline_over_http(app, logins, clock):
    """The prepared fast path hands deadlines to the general rules: a save in flight when the
    section closed is accepted within the grace, a later one is refused."""
    client, response = api_login(app, *logins[0])
    bearer(client, response)
    items = client.get("/api/v1/taker/attempt").json()["items"]
    first, second = items[0], items[1]
    clock.advance(600 + 5)  # section 1 (10 minutes) ended 5 s ago
    late = client.put(f"/api/v1/taker/answers/{first['item_id']}",
                      json={"response": answer_for(first), "seq": 1})
    assert late.status_code == 200 and late.json()["accepted"]
    assert late.json()["remaining_s"] == 300 - 5  # the next section opened at the deadline
    clock.advance(15)
    too_late = client.put(f"/api/v1/taker/answers/{second['item_id']}",
                          json={"response": answer_for(second), "seq": 2})
    assert too_late.status_code == 409
    assert too_late.json()["code"] == "taker.error_section_closed"
    status = client.get("/api/v1/taker/status").json()
    assert status["current_section"] == 1 and status["remaining_s"] == 300 - 20


def test_the_form_is_exactly_the_documented_attempt_shape(app, logins, database, clock):
    """The form is written straight from the view (the fast path at 08:00); it must be the
    same JSON as validating the view into AttemptRead, with nothing more (no bank version,
    no name or NIP, nothing of the key)."""
    from app.delivery.attempts import attempt_for_access_token
    from app.delivery.schemas import AttemptRead
    from app.delivery.views import attempt_view

    nip, token = logins[0]
    client, response = api_login(app, nip, token)
    access = response.json()["access_token"]
    bearer(client, response)
    first = client.get("/api/v1/taker/attempt").json()["items"][0]
    client.put(f"/api/v1/taker/answers/{first['item_id']}",
               json={"response": answer_for(first), "seq": 3, "flagged": True})
    sent = client.get("/api/v1/taker/attempt")
    assert sent.headers["content-type"] == "application/json"
    with database.transaction(write=False) as db:
        attempt = attempt_for_access_token(db, token=access, secret=app.state.secret)
        view = attempt_view(db, attempt=attempt, now=clock.now())
        documented = AttemptRead.model_validate(view, from_attributes=True).model_dump(
            mode="json")
    assert sent.json() == documented
    assert set(sent.json()) == set(AttemptRead.model_fields)
    assert sent.json()["items"][0]["flagged"] is True and sent.json()["items"][0]["seq"] == 3
    assert "bank_version_id" not in sent.text and nip not in sent.text


def test_an_attempt_cannot_be_handed_in_before_it_starts(app, client, logins, database):
    """The rule is in timing.submit, so the API and the page refuse alike (#14: the API
    answered 200 "submitted" right after login)."""
    from app.delivery.models import Attempt, AttemptState

    nip, token = logins[0]
    api, login = api_login(app, nip, token)
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    refused = api.post("/api/v1/taker/submit", headers=bearer)
    assert refused.status_code == 409 and refused.json()["code"] == "taker.error_not_started"
    nip2, token2 = logins[1]
    assert page_login(client, nip2, token2).status_code == 303
    page = client.post("/ujian/selesai", data={"csrf_token": csrf_from(client.get("/ujian").text)},
                       follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/ujian"
    with database.transaction(write=False) as db:
        states = {a.state for a in db.scalars(select(Attempt))}
    assert states == {AttemptState.not_started}
    # Once started (the first GET /attempt starts the clock) the API hands in.
    assert api.get("/api/v1/taker/attempt", headers=bearer).status_code == 200
    done = api.post("/api/v1/taker/submit", headers=bearer)
    assert done.status_code == 200 and done.json()["state"] == "submitted"
