"""What the taker's screen asks of the server, on SQLite and PostgreSQL: a multiple-response
item's maxChoices refused on save (422, translated) and minChoices shown and counted; the whole
test's time beside the section's; the submit summary over every section; and the watcher that
pushes a pause to the listening pages with one query per tick, whatever their number."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from app.delivery import watch
from app.delivery.models import Answer, Attempt
from app.delivery.views import attempt_view
from app.i18n import translate
from app.proctoring.service import pause_attempt, resume_attempt
from tests.conftest import csrf_from, run_coroutine
from tests.factories import BLUEPRINT, bank_doc, bank_zip, make_open_session, run_import

# A whole-test limit beside the sections' own, and every pick from version 1 of the bank: the
# version with the choice bounds (make_open_session then imports the plain bank as version 2).
TIMED_BLUEPRINT = (BLUEPRINT.replace("name: Uji\n", "name: Uji\ntime_limit_minutes: 20\n")
                   .replace("{bank: UJI-POT,", "{bank: UJI-POT, version: 1,"))


@pytest.fixture
def logins(database, settings, clock):
    with database.transaction() as session:
        doc = bank_doc()
        for item in doc["items"]:
            if item["code"] == "MUL-1":
                item["scoring"] = {"min": 0, "max": 5, "min_choices": 2, "max_choices": 2}
        run_import(session, clock, "uji.zip", bank_zip(doc))
        _, logins = make_open_session(session, clock, secret=settings.resolved_secret(),
                                      participants=3, blueprint_yaml=TIMED_BLUEPRINT)
    return logins


def api(app, nip: str, token: str) -> TestClient:
    client = TestClient(app)
    response = client.post("/api/v1/taker/login",
                           json={"nip": nip, "token": token, "workstation": "PC-1"})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def test_the_bank_carries_choice_bounds_apart_from_score_bounds(database, logins):
    from app.bank.models import Item

    with database.transaction(write=False) as db:
        scoring = db.scalars(select(Item.scoring).where(Item.code == "MUL-1")).first()
    assert scoring == {"min": 0.0, "max": 5.0, "min_choices": 2, "max_choices": 2}


def test_more_options_than_max_choices_are_refused_with_422_and_nothing_stored(
        app, logins, database):
    client = api(app, *logins[0])
    form = client.get("/api/v1/taker/attempt").json()
    multiple = next(i for i in form["items"] if i["kind"] == "multiple")
    assert (multiple["min_choices"], multiple["max_choices"]) == (2, 2)
    url = f"/api/v1/taker/answers/{multiple['item_id']}"
    refused = client.put(url, json={"response": [1, 2, 3], "seq": 1})
    assert refused.status_code == 422
    assert refused.json()["code"] == "takerscreen.error_max_choices"
    assert "at most 2" in refused.json()["detail"]
    assert translate("id", refused.json()["code"]) == (
        "Terlalu banyak jawaban dipilih untuk soal ini.")
    with database.transaction(write=False) as db:
        assert db.scalar(select(Answer.seq).where(Answer.item_id == multiple["item_id"])) is None
    # one option is the taker's way to two: saved, but not yet an answer
    partial = client.put(url, json={"response": [3], "seq": 2})
    assert partial.status_code == 200 and partial.json()["accepted"]
    with database.transaction(write=False) as db:
        attempt = db.scalars(select(Attempt)).first()
        view = attempt_view(db, attempt=attempt, now=attempt.started_at)
        position = next(i.position for i in view.items if i.item_id == multiple["item_id"])
        assert position in view.summary()["unanswered"]
    assert client.put(url, json={"response": [3, 1], "seq": 3}).status_code == 200
    with database.transaction(write=False) as db:
        attempt = db.scalars(select(Attempt)).first()
        view = attempt_view(db, attempt=attempt, now=attempt.started_at)
        assert position not in view.summary()["unanswered"]
        assert view.summary(section=1)["unanswered"] == [4, 5]  # the pending section's items
        assert db.scalar(select(Answer.response).where(Answer.item_id == multiple["item_id"])
                         ) is not None


def test_the_page_says_how_many_to_choose_and_its_save_refuses_more(client, logins):
    nip, token = logins[1]
    page = client.get("/")
    client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                      "csrf_token": csrf_from(page.text)})
    client.post("/ujian/mulai", data={"csrf_token": csrf_from(client.get("/ujian").text)})
    html = client.get("/ujian/soal/1").text
    assert "Pilih 2 jawaban." in html
    assert 'data-max-choices="2"' in html and 'data-min-choices="2"' in html
    form = html.split('data-kind="multiple"')[0].rsplit("<form", 1)[1]
    item_id = int(form.split('data-item="')[1].split('"')[0])
    refused = client.put(f"/ujian/jawaban/{item_id}", json={"response": [1, 2, 3], "seq": 1},
                         headers={"X-CSRF-Token": csrf_from(html)})
    assert refused.status_code == 422
    assert refused.json()["code"] == "takerscreen.error_max_choices"
    # the countdown is labelled by section, and the whole test's time is shown beside it
    assert "Sisa waktu bagian 1 dari 2" in html
    assert 'data-test-remaining="1200"' in html and 'data-testid="test-countdown"' in html


def test_status_carries_the_whole_tests_time(app, logins, clock):
    client = api(app, *logins[2])
    client.get("/api/v1/taker/attempt")
    clock.advance(60)
    status = client.get("/api/v1/taker/status").json()
    assert (status["remaining_s"], status["test_remaining_s"]) == (540, 1140)


def test_the_watcher_reads_once_per_tick_and_tells_only_the_page_that_changed(
        database, logins, clock, settings):
    from app.delivery import attempts, timing

    with database.transaction() as db:
        ids = []
        for n, (nip, token) in enumerate(logins):
            attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{n}",
                                     client_addr="10.0.0.1", secret=settings.resolved_secret(),
                                     now=clock.now()).attempt
            timing.start(db, attempt=attempt, now=clock.now())
            ids.append((attempt.id, attempt.session_id))
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    watcher = watch.Watch(database, clock)
    states = watcher.read({session for _, session in ids})
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert set(states) == {attempt_id for attempt_id, _ in ids}

    async def scenario() -> tuple[dict, bool]:
        watcher.tick_s = 0.01
        queues = [watcher.subscribe(a, s, states[a][0]) for a, s in ids]
        with database.transaction() as db:
            paused = db.get_one(Attempt, ids[0][0])
            assert pause_attempt(db, attempt=paused, actor="pak.budi", now=clock.now())
        told = await asyncio.wait_for(queues[0].get(), 10)
        others_quiet = all(q.empty() for q in queues[1:])
        with database.transaction() as db:
            assert resume_attempt(db, attempt=db.get_one(Attempt, ids[0][0]), actor="pak.budi",
                                  now=clock.now())
        resumed = await asyncio.wait_for(queues[0].get(), 10)
        assert resumed["state"] == "active"
        for (attempt_id, _), queue in zip(ids, queues, strict=True):
            watcher.unsubscribe(attempt_id, queue)
        return told, others_quiet

    told, others_quiet = run_coroutine(scenario())
    assert told["state"] == "paused" and told["remaining_s"] == 600
    assert told["test_remaining_s"] == 1200
    assert others_quiet
    assert watcher.pages == {} and watcher.seen == {}
