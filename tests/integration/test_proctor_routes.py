"""The proctor console over HTTP: who may see which session (HTML, stream and JSON), the live
fragment, actions with CSRF and reasons, selections, closing with confirmation, the event
stream's first push, and the room's score screen. Real SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit import AuditEvent
from app.delivery.models import Attempt, AttemptState
from app.sessions.models import ProctorAssignment, RosterEntry, SessionState, TestSession
from tests.conftest import csrf_from
from tests.factories import make_open_session


@pytest.fixture
def rooms(database, settings, clock, make_user, proctor):
    """Session A (assigned to pak.proctor, the shared ``proctor`` client) and B (assigned to
    bu.sri), three takers each."""
    make_user("bu.sri", role="proctor")
    from app.auth.models import User

    with database.transaction() as db:
        a, logins_a = make_open_session(db, clock, secret=settings.resolved_secret(),
                                        participants=3, code="RUANG-A")
        b, _ = make_open_session(db, clock, secret=settings.resolved_secret(),
                                 participants=2, code="RUANG-B", first=10)
        users = {u.username: u.id for u in db.scalars(select(User))}
        db.add(ProctorAssignment(session_id=a.id, user_id=users["pak.budi"]))
        db.add(ProctorAssignment(session_id=b.id, user_id=users["bu.sri"]))
    return logins_a


def taker(app, nip, token, seat="PC-01"):
    client = TestClient(app)
    response = client.post("/api/v1/taker/login",
                           json={"nip": nip, "token": token, "workstation": seat})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    form = client.get("/api/v1/taker/attempt").json()
    return client, form


def entry_ids(database, code):
    with database.transaction(write=False) as db:
        return sorted(db.scalars(select(RosterEntry.id).join(
            TestSession, TestSession.id == RosterEntry.session_id)
            .where(TestSession.code == code)))


def test_a_proctor_sees_only_their_own_sessions(proctor, rooms, database, clock):
    token = csrf_from(proctor.get("/proctor").text)
    assert proctor.get("/proctor/sessions/RUANG-A").status_code == 200
    other = entry_ids(database, "RUANG-B")[0]
    for path in ("/proctor/sessions/RUANG-B", "/proctor/sessions/RUANG-B/grid",
                 "/proctor/sessions/RUANG-B/stream", f"/proctor/sessions/RUANG-B/peserta/{other}",
                 "/api/v1/proctor/sessions/RUANG-B"):
        assert proctor.get(path).status_code == 403, path
    for path, data in ((f"/proctor/sessions/RUANG-B/peserta/{other}/note", {"reason": "x"}),
                       ("/proctor/sessions/RUANG-B/pilihan", {"action": "pause",
                                                              "entry": str(other)}),
                       ("/proctor/sessions/RUANG-B/state", {"action": "pause"}),
                       ("/proctor/sessions/RUANG-B/papan", {"enabled": "on"})):
        assert proctor.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    # Authorization comes before reading the form: an incomplete one is still a 403.
    assert proctor.post("/proctor/sessions/RUANG-B/state",
                     data={"csrf_token": token}).status_code == 403
    refused = proctor.post(f"/api/v1/proctor/sessions/RUANG-B/seats/{other}",
                        json={"action": "note", "reason": "x"}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 403
    # An entry of session B through session A's address is not found either.
    assert proctor.get(f"/proctor/sessions/RUANG-A/peserta/{other}").status_code == 404
    with database.transaction(write=False) as db:
        assert db.scalar(select(TestSession.state).where(TestSession.code == "RUANG-B")) == \
            SessionState.open
        assert not list(db.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(("incident.note", "session.pause")))))
    assert proctor.get("/proctor/sessions/NOPE").status_code == 404


def test_console_shows_every_participant_and_updates(app, proctor, rooms, database):
    page = proctor.get("/proctor/sessions/RUANG-A")
    assert 'sse-connect="/proctor/sessions/RUANG-A/stream"' in page.text
    assert page.text.count('data-testid="seat-') == 3
    assert 'data-testid="count-absent">3<' in page.text
    client, form = taker(app, *rooms[0])
    item = form["items"][0]
    option = item["options"][0]["id"]
    saved = client.put(f"/api/v1/taker/answers/{item['item_id']}",
                       json={"response": [option] if item["kind"] == "multiple" else option,
                             "seq": 1, "flagged": True})
    assert saved.status_code == 200
    grid = proctor.get("/proctor/sessions/RUANG-A/grid", headers={"HX-Request": "true"})
    assert "<html" not in grid.text
    row = re.search(rf'data-testid="seat-{rooms[0][0]}".*?</tr>', grid.text, re.S).group(0)
    assert 'data-state="answering"' in row and ">1/5<" in row
    assert 'data-testid="count-answering">1<' in grid.text
    as_json = proctor.get("/api/v1/proctor/sessions/RUANG-A").json()
    seat = next(s for s in as_json["seats"] if s["nip"] == rooms[0][0])
    assert (seat["state"], seat["answered"], seat["flagged"]) == ("answering", 1, 1)
    assert as_json["counters"]["absent"] == 2


def test_actions_from_the_panel(app, proctor, rooms, database):
    client, _ = taker(app, *rooms[0])
    entry = entry_ids(database, "RUANG-A")[0]
    panel = proctor.get(f"/proctor/sessions/RUANG-A/peserta/{entry}",
                        headers={"HX-Request": "true"})
    token = csrf_from(panel.text)
    base = f"/proctor/sessions/RUANG-A/peserta/{entry}"
    hx = {"HX-Request": "true"}
    no_reason = proctor.post(f"{base}/extra_time", headers=hx,
                          data={"csrf_token": token, "minutes": "5"})
    assert no_reason.status_code == 422 and 'data-testid="panel-error"' in no_reason.text
    before = client.get("/api/v1/taker/status").json()["remaining_s"]
    added = proctor.post(f"{base}/extra_time", headers=hx,
                      data={"csrf_token": token, "minutes": "5", "reason": "listrik padam"})
    assert added.status_code == 200 and 'data-testid="panel-notice"' in added.text
    assert client.get("/api/v1/taker/status").json()["remaining_s"] == before + 300
    assert proctor.post(f"{base}/pause", headers=hx, data={"csrf_token": token}).status_code == 200
    assert client.get("/api/v1/taker/status").json()["state"] == "paused"
    assert proctor.post(f"{base}/resume", headers=hx, data={"csrf_token": token}).status_code == 200
    no_csrf = proctor.post(f"{base}/submit", headers=hx, data={"reason": "x"})
    assert no_csrf.status_code == 403
    assert proctor.post(f"{base}/note", headers=hx,
                     data={"csrf_token": token, "reason": "<script>alert(1)</script>"}
                     ).status_code == 200
    shown = proctor.get(f"{base}", headers=hx).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>alert" not in shown
    done = proctor.post(f"{base}/submit", headers=hx,
                     data={"csrf_token": token, "reason": "meninggalkan ruangan"})
    assert done.status_code == 200
    assert client.get("/api/v1/taker/status").status_code == 401  # logged out at once
    with database.transaction(write=False) as db:
        assert db.scalar(select(Attempt.state)) == AttemptState.submitted
        events = {e.action: e for e in db.scalars(select(AuditEvent).where(
            AuditEvent.actor == "user:pak.budi"))}
    assert events["attempt.extra_time"].reason == "listrik padam"
    assert events["attempt.force_submit"].reason == "meninggalkan ruangan"
    assert {"attempt.pause", "attempt.resume", "incident.note"} <= set(events)


def test_the_json_api_acts_with_the_csrf_header_only(app, proctor, rooms, database):
    client, _ = taker(app, *rooms[1], seat="PC-02")
    entry = entry_ids(database, "RUANG-A")[1]
    token = csrf_from(proctor.get("/proctor").text)
    path = f"/api/v1/proctor/sessions/RUANG-A/seats/{entry}"
    body = {"action": "extra_time", "minutes": 3, "reason": "kursi rusak"}
    assert proctor.post(path, json=body).status_code == 403  # no X-CSRF-Token: refused
    before = client.get("/api/v1/taker/status").json()["remaining_s"]
    done = proctor.post(path, json=body, headers={"X-CSRF-Token": token})
    assert done.status_code == 200 and done.json() == {"done": "extra_time"}
    assert client.get("/api/v1/taker/status").json()["remaining_s"] == before + 180
    refused = proctor.post(path, json={"action": "reset", "reason": ""},
                        headers={"X-CSRF-Token": token})
    assert refused.status_code == 422 and refused.json()["code"] == "reason_required"


def test_selection_close_and_the_score_screen(app, proctor, rooms, database):
    clients = [taker(app, *rooms[i], seat=f"PC-0{i}")[0] for i in range(2)]
    ids = entry_ids(database, "RUANG-A")
    token = csrf_from(proctor.get("/proctor/sessions/RUANG-A").text)
    before = [c.get("/api/v1/taker/status").json()["remaining_s"] for c in clients]
    nobody = proctor.post("/proctor/sessions/RUANG-A/pilihan",
                       data={"csrf_token": token, "action": "extra_time", "minutes": "10",
                             "reason": "x"})
    assert nobody.status_code == 422 and 'data-testid="console-error"' in nobody.text
    done = proctor.post("/proctor/sessions/RUANG-A/pilihan",
                     data={"csrf_token": token, "action": "extra_time", "minutes": "10",
                           "reason": "jaringan putus", "entry": [str(i) for i in ids[:2]]})
    assert done.status_code == 200 and 'data-testid="console-notice"' in done.text
    after = [c.get("/api/v1/taker/status").json()["remaining_s"] for c in clients]
    assert [a - b for a, b in zip(after, before, strict=True)] == [600, 600]

    # The score screen: off by default, then an unguessable address, then off again.
    assert proctor.get("/papan/RUANG-A/anything").status_code == 404
    proctor.post("/proctor/sessions/RUANG-A/papan", data={"csrf_token": token, "enabled": "on"})
    page = proctor.get("/proctor/sessions/RUANG-A").text
    link = re.search(r'href="(/papan/RUANG-A/[^"]+)"', page).group(1)
    anonymous = TestClient(app)
    assert "Peserta 1" not in anonymous.get(link).text
    clients[0].post("/api/v1/taker/submit")
    board = anonymous.get(link)
    assert board.status_code == 200 and "Peserta 1" in board.text and "Peserta 2" not in board.text

    refused = proctor.post("/proctor/sessions/RUANG-A/state",
                        data={"csrf_token": token, "action": "close"})
    assert refused.status_code == 422
    closed = proctor.post("/proctor/sessions/RUANG-A/state",
                       data={"csrf_token": token, "action": "close", "confirm": "yes"},
                       follow_redirects=False)
    assert closed.status_code == 303
    with database.transaction(write=False) as db:
        states = sorted(s.value for s in db.scalars(select(Attempt.state)))
    assert states == ["submitted", "submitted"]
    proctor.post("/proctor/sessions/RUANG-A/papan", data={"csrf_token": token})
    assert anonymous.get(link).status_code == 404


def read_events(lines):
    """(event, data) pairs from a text/event-stream's lines."""
    event, data = "", []
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event:
            yield event, "\n".join(data)
            event, data = "", []


def test_the_stream_pushes_the_grid_then_only_changed_rows(app, proctor, rooms, monkeypatch):
    from app.proctoring import routes

    monkeypatch.setattr(routes, "STREAM_TICK_S", 0.1)
    monkeypatch.setattr(routes, "STREAM_MAX_S", 20)
    nip = rooms[0][0]
    with proctor.stream("GET", "/proctor/sessions/RUANG-A/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
        event, first = next(events)
        assert event == "grid" and first.count('data-testid="seat-') == 3
        assert 'data-testid="count-absent">3<' in first
        client, form = taker(app, *rooms[0])
        item = form["items"][0]
        option = item["options"][0]["id"]
        client.put(f"/api/v1/taker/answers/{item['item_id']}",
                   json={"response": [option] if item["kind"] == "multiple" else option,
                         "seq": 1})
        for event, data in events:
            assert event == "rows"  # same roster, same session state: never the whole table
            if ">1/5<" in data:
                break
    assert data.count('data-testid="seat-') == 1  # only the row that changed
    assert f'data-testid="seat-{nip}"' in data and 'hx-swap-oob="true"' in data
    assert 'id="counters" hx-swap-oob="true"' in data
    assert data.index("<template>") < data.index('data-testid="seat-')  # see routes


def test_rows_needing_attention(app, proctor, rooms, database):
    """A login refused at a second PC, and a PC whose saves failed several times before one
    got through, both show on the participant's row."""
    from tests.integration.test_taker_http import page_login

    page = TestClient(app)
    nip, token = rooms[0]
    assert page_login(page, nip, token).status_code == 303
    started = page.post("/ujian/mulai", data={"csrf_token": csrf_from(page.get("/ujian").text)},
                        follow_redirects=True)
    csrf = csrf_from(started.text)
    item_id = int(started.text.split('data-item="')[1].split('"')[0])
    from app.bank.models import Item

    with database.transaction(write=False) as db:
        multiple = db.scalar(select(Item.kind).where(Item.id == item_id)).value == "multiple"
    option = 1  # the first option shown: the page names options by their place
    body = {"response": [option] if multiple else option, "seq": 1}
    quiet = page.put(f"/ujian/jawaban/{item_id}", json=body,
                     headers={"X-CSRF-Token": csrf, "X-Save-Failures": "1"})
    assert quiet.status_code == 200
    grid = proctor.get("/proctor/sessions/RUANG-A/grid").text
    assert 'data-testid="attention-save_failures"' not in grid
    body["seq"] = 2
    page.put(f"/ujian/jawaban/{item_id}", json=body,
             headers={"X-CSRF-Token": csrf, "X-Save-Failures": "4"})
    other_pc = TestClient(app)  # another computer, its own seat cookie
    assert page_login(other_pc, nip, token).status_code == 409
    grid = proctor.get("/proctor/sessions/RUANG-A/grid").text
    row = re.search(rf'data-testid="seat-{nip}".*?</tr>', grid, re.S).group(0)
    assert "needs-attention" in row
    assert 'data-testid="attention-save_failures"' in row
    assert 'data-testid="attention-seat_refused"' in row
    assert 'data-testid="count-attention">1<' in grid


def test_a_refused_action_leaves_nothing_behind(app, proctor, rooms, database):
    """Extra time for a participant not yet arrived creates their attempt to hold the
    minutes; refused (no reason given), nothing of it stays, for one seat and for a
    selection whose last participant is refused (all or nothing), while the page still
    answers from the same transaction."""
    ids = entry_ids(database, "RUANG-A")
    clients = [taker(app, *rooms[2], seat="PC-03")[0]]  # the last entry of the roster
    token = csrf_from(proctor.get("/proctor/sessions/RUANG-A").text)

    def attempts_of(entries):
        with database.transaction(write=False) as db:
            return db.scalars(select(Attempt.roster_entry_id)
                              .where(Attempt.roster_entry_id.in_(entries))).all()

    refused = proctor.post(f"/proctor/sessions/RUANG-A/peserta/{ids[0]}/extra_time",
                        data={"csrf_token": token, "minutes": "10", "reason": ""})
    assert refused.status_code == 422
    assert attempts_of([ids[0]]) == []
    clients[0].get("/api/v1/taker/attempt")
    clients[0].post("/api/v1/taker/submit")  # the last participant has handed in
    before = clients[0].get("/api/v1/taker/status").json()
    selection = proctor.post("/proctor/sessions/RUANG-A/pilihan",
                          data={"csrf_token": token, "action": "extra_time", "minutes": "10",
                                "reason": "listrik padam", "entry": [str(i) for i in ids]})
    assert selection.status_code == 422 and 'data-testid="console-error"' in selection.text
    # The first two got attempts to hold the minutes before the last one was refused: undone.
    assert attempts_of(ids[:2]) == []
    assert clients[0].get("/api/v1/taker/status").json() == before
