"""A taker sees only their own form (security review #13, finding 12): the images of the items
in it and no other image of the bank version, and options named by their place in the taker's
own shuffled order, never by the database ids that follow the author's order. Answers are still
stored, reported and scored with the real option ids."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.bank.models import Item, ItemOption
from app.delivery.models import Answer, Attempt, AttemptItem
from app.main import score_pending_now
from app.scoring.models import ConstructScore
from app.sessions.models import RosterEntry
from tests.conftest import csrf_from
from tests.factories import SVG, bank_zip, run_import

PARTICIPANTS = 8  # a 5-option item shown in the author's order to all 8: odds 1 in 120**8


def _img(name: str) -> str:
    return f'<p><img src="media/{name}" alt=""></p>'


BANK = {
    "format": "cact-itembank/1",
    "bank": {"code": "ISO-POT", "title": "Bank isolasi", "kind": "potensi"},
    "scoring": {"points": {"single": {"correct": 5, "wrong": 0}}},
    "items": [
        {"code": "NUM-1", "kind": "single", "construct": "potensi.numerik",
         "stem": "<p>2, 4, 6, …</p>",
         "options": [{"id": "A", "text": "7"}, {"id": "B", "text": "8", "key": True}]},
        # Two figural items, one per form: each shows its own image (in the stem, in an option).
        {"code": "FIG-1", "kind": "single", "construct": "potensi.figural",
         "stem": "<p>Gambar berikutnya?</p>" + _img("fig1.svg"),
         "options": [{"id": "A", "text": "Segitiga", "key": True}, {"id": "B", "text": "Kotak"}]},
        {"code": "FIG-2", "kind": "single", "construct": "potensi.figural",
         "stem": "<p>Mana yang sama?</p>",
         "options": [{"id": "A", "text": "Lingkaran" + _img("fig2.svg"), "key": True},
                     {"id": "B", "text": "Bintang"}]},
        {"code": "VER-1", "kind": "single", "construct": "potensi.verbal",
         "stem": "<p>Lawan kata <em>hemat</em>?</p>",
         "options": [{"id": "A", "text": "cermat"}, {"id": "B", "text": "irit"},
                     {"id": "C", "text": "boros", "key": True}, {"id": "D", "text": "kikir"},
                     {"id": "E", "text": "teliti"}]},
        {"code": "MUL-1", "kind": "multiple", "construct": "potensi.berpikir_kritis",
         "scoring": {"min": 0, "max": 5}, "stem": "<p>Pilih semua kata baku.</p>",
         "options": [{"id": "A", "text": "apotek", "points": 2.5},
                     {"id": "B", "text": "kualitas", "points": 2.5},
                     {"id": "C", "text": "resiko", "points": -1},
                     {"id": "D", "text": "nasehat", "points": -1}]},
        # In the second section: not shown (nor its image) until that section opens.
        {"code": "LIK-1", "kind": "likert", "construct": "potensi.motivasi_komitmen",
         "stem": "<p>Saya mudah bosan.</p>" + _img("fig3.svg"),
         "options": [{"id": str(n), "text": t} for n, t in
                     enumerate(["STS", "TS", "N", "S", "SS"], 1)]},
    ],
}

BLUEPRINT = """\
format: cact-blueprint/1
code: ISO-BP
name: Isolasi
sections:
  - title: Kognitif
    time_limit_minutes: 10
    picks:
      - {bank: ISO-POT, construct: potensi.numerik, count: 1}
      - {bank: ISO-POT, construct: potensi.figural, count: 1}
      - {bank: ISO-POT, construct: potensi.verbal, count: 1}
      - {bank: ISO-POT, construct: potensi.berpikir_kritis, count: 1}
  - title: Non-kognitif
    time_limit_minutes: 5
    picks:
      - {bank: ISO-POT, construct: potensi.motivasi_komitmen, count: 1}
"""


@pytest.fixture
def logins(database, settings, clock):
    from app.assembly.service import blueprint_version_ids, import_blueprint
    from app.auth.security import encrypt_token, keyed_digest, new_participant_token
    from app.bank.service import freeze_versions
    from app.sessions.models import Participant, SessionState, TestSession

    secret = settings.resolved_secret()
    media = {"fig1.svg": SVG, "fig2.svg": SVG.replace(b"rect", b"circle"),
             "fig3.svg": SVG.replace(b'width="10"', b'width="9"')}
    with database.transaction() as db:
        run_import(db, clock, "iso.zip", bank_zip(BANK, media))
        blueprint = import_blueprint(db, BLUEPRINT, source="bp.yaml", actor="test",
                                     now=clock.now())
        freeze_versions(db, blueprint_version_ids(db, blueprint.id))
        session = TestSession(code="ISO", name="Sesi isolasi", room="Lab 1",
                              blueprint_id=blueprint.id, starts_at=clock.now(),
                              ends_at=clock.now() + timedelta(hours=4),
                              state=SessionState.open, created_at=clock.now(), settings={})
        db.add(session)
        db.flush()
        result = []
        for n in range(1, PARTICIPANTS + 1):
            person = Participant(nip=f"198001012005012{n:03d}", name=f"Peserta {n}",
                                 job_group="pengawas")
            db.add(person)
            db.flush()
            token = new_participant_token()
            db.add(RosterEntry(session_id=session.id, participant_id=person.id,
                               token_hmac=keyed_digest(secret, "participant-token", token),
                               token_encrypted=encrypt_token(secret, token)))
            result.append((person.nip, token))
    return result


def api_taker(app, nip, token, seat):
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": nip, "token": token, "workstation": seat})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client, login.json()["attempt_id"]


def page_taker(app, nip, token):
    """Logged in through the pages and past the instructions; returns the client."""
    client = TestClient(app)
    page = client.get("/")
    assert client.post("/ujian/masuk", data={"nip": nip, "token": token,
                                             "csrf_token": csrf_from(page.text)},
                       follow_redirects=False).status_code == 303
    instructions = client.get("/ujian")
    client.post("/ujian/mulai", data={"csrf_token": csrf_from(instructions.text)})
    return client


def codes_of(database, attempt_id: int) -> dict[str, tuple[int, int, list[int]]]:
    """item code -> (item id, position, real option ids as shown) of an attempt's form."""
    with database.transaction(write=False) as db:
        rows = db.execute(select(Item.code, Item.id, AttemptItem.position,
                                 AttemptItem.option_order)
                          .join(AttemptItem, AttemptItem.item_id == Item.id)
                          .where(AttemptItem.attempt_id == attempt_id)).all()
    return {code: (item_id, position, list(order)) for code, item_id, position, order in rows}


def authored(database, code: str) -> list[tuple[int, str, str]]:
    """(real id, label, content) of an item's options in the author's order."""
    with database.transaction(write=False) as db:
        return [tuple(r) for r in db.execute(
            select(ItemOption.id, ItemOption.label, ItemOption.content)
            .join(Item, Item.id == ItemOption.item_id).where(Item.code == code)
            .order_by(ItemOption.position))]


def page_attempt_id(database, nip: str) -> int:
    from app.sessions.models import Participant

    with database.transaction(write=False) as db:
        return db.scalar(select(Attempt.id).join(
            RosterEntry, RosterEntry.id == Attempt.roster_entry_id).join(
            Participant, Participant.id == RosterEntry.participant_id)
            .where(Participant.nip == nip))


def test_a_taker_gets_the_images_of_their_own_items_only(app, logins, database):
    client = page_taker(app, *logins[0])
    form = codes_of(database, page_attempt_id(database, logins[0][0]))
    with database.transaction(write=False) as db:
        version = db.scalar(select(Item.bank_version_id).where(Item.code == "FIG-1"))
    own, other = ("fig1.svg", "fig2.svg") if "FIG-1" in form else ("fig2.svg", "fig1.svg")
    mine = client.get(f"/ujian/media/{version}/{own}")
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("image/svg")
    # Same bank version, but its item is in other takers' forms: as absent as a missing file.
    refused = client.get(f"/ujian/media/{version}/{other}")
    missing = client.get(f"/ujian/media/{version}/nothing.svg")
    assert refused.status_code == missing.status_code == 404
    assert refused.text.replace(other, "X") == missing.text.replace("nothing.svg", "X")
    assert client.get(f"/ujian/media/{version + 1}/{own}").status_code == 404
    # An item of a later section: its image comes with the section, like its stem.
    assert client.get(f"/ujian/media/{version}/fig3.svg").status_code == 404
    page = client.get("/ujian/soal/1")
    client.post("/ujian/bagian-berikut", data={"csrf_token": csrf_from(page.text)})
    assert client.get(f"/ujian/media/{version}/fig3.svg").status_code == 200
    assert client.get(f"/ujian/media/{version}/{own}").status_code == 200  # still, going back
    assert client.get(f"/ujian/media/{version}/{other}").status_code == 404


def test_option_ids_sent_are_places_in_the_takers_order_not_the_authors_ids(
        app, logins, database):
    author = authored(database, "VER-1")
    real_ids = [r[0] for r in author]
    label_of = {content: label for _, label, content in author}
    orders, names = [], []
    for n, (nip, token) in enumerate(logins):
        client, attempt_id = api_taker(app, nip, token, f"PC-{n}")
        item_id, _, shown = codes_of(database, attempt_id)["VER-1"]
        item = next(i for i in client.get("/api/v1/taker/attempt").json()["items"]
                    if i["item_id"] == item_id)
        ids = [o["id"] for o in item["options"]]
        # Listed in the taker's order, numbered 1..n in it: the id says nothing of the author.
        assert ids == [1, 2, 3, 4, 5], ids
        assert not set(ids) & set(real_ids)
        labels = [label_of[o["content"]] for o in item["options"]]
        assert labels == [label_of[c] for i, _, c in sorted(
            author, key=lambda r: shown.index(r[0]))]  # the shuffled order, as stored
        orders.append(labels)
        names.append({label_of[o["content"]]: o["id"] for o in item["options"]})
    assert any(labels != ["A", "B", "C", "D", "E"] for labels in orders)
    # Seen from two forms, one option does not keep one id, so ids cannot be matched across
    # forms to rebuild the author's order.
    different = [(a, b) for a in range(len(orders)) for b in range(a) if orders[a] != orders[b]]
    assert different
    a, b = different[0]
    assert names[a] != names[b]


def test_the_item_page_names_options_by_place(app, logins, database):
    nip, token = logins[0]
    client = page_taker(app, nip, token)
    item_id, position, shown = codes_of(database, page_attempt_id(database, nip))["VER-1"]
    author = authored(database, "VER-1")
    page = client.get(f"/ujian/soal/{position}").text
    html = page.split(f'data-item="{item_id}"')[1].split("</form>")[0]  # that item's form
    values = [int(v) for v in re.findall(r'name="response" value="(\d+)"', html)]
    assert values == [1, 2, 3, 4, 5]
    contents = re.findall(r'<span class="option-content">(.*?)</span>', html, re.S)
    by_id = {real: content for real, _, content in author}
    assert contents == [by_id[real] for real in shown]
    assert values != shown  # not the real ids (which are all above 5 here)


def test_a_place_is_stored_as_the_real_option_and_scored(app, logins, database):
    nip, token = logins[0]
    client, attempt_id = api_taker(app, nip, token, "PC-1")
    form = codes_of(database, attempt_id)
    client.get("/api/v1/taker/attempt")
    author = {label: real for real, label, _ in authored(database, "VER-1")}
    ver_id, _, ver_shown = form["VER-1"]
    key = author["C"]
    saved = client.put(f"/api/v1/taker/answers/{ver_id}",
                       json={"response": ver_shown.index(key) + 1, "seq": 1})
    assert saved.status_code == 200 and saved.json()["accepted"], saved.text
    mul = {label: real for real, label, _ in authored(database, "MUL-1")}
    mul_id, _, mul_shown = form["MUL-1"]
    chosen = [mul_shown.index(mul["B"]) + 1, mul_shown.index(mul["A"]) + 1]
    assert client.put(f"/api/v1/taker/answers/{mul_id}",
                      json={"response": chosen, "seq": 2}).status_code == 200
    with database.transaction(write=False) as db:
        stored = {a.item_id: a.response for a in db.scalars(
            select(Answer).where(Answer.attempt_id == attempt_id))}
    assert stored[ver_id] == key
    assert stored[mul_id] == sorted([mul["A"], mul["B"]], key=mul_shown.index)
    # Resuming, the taker sees their answers in places again.
    items = {i["item_id"]: i for i in client.get("/api/v1/taker/attempt").json()["items"]}
    assert items[ver_id]["response"] == ver_shown.index(key) + 1
    assert items[mul_id]["response"] == sorted(chosen)
    assert client.post("/api/v1/taker/submit").json()["state"] == "submitted"
    score_pending_now(app)
    with database.transaction(write=False) as db:
        raw = dict(db.execute(select(ConstructScore.construct, ConstructScore.raw)
                              .where(ConstructScore.attempt_id == attempt_id)).all())
    assert raw["potensi.verbal"] == 5 and raw["potensi.berpikir_kritis"] == 5


def test_a_place_saved_without_javascript_is_stored_as_the_real_option(app, logins, database):
    nip, token = logins[1]
    client = page_taker(app, nip, token)
    attempt_id = page_attempt_id(database, nip)
    ver_id, position, shown = codes_of(database, attempt_id)["VER-1"]
    html = client.get(f"/ujian/soal/{position}").text
    posted = client.post(f"/ujian/soal/{position}", data={
        "csrf_token": csrf_from(html), "response": "2"}, follow_redirects=False)
    assert posted.status_code == 303
    with database.transaction(write=False) as db:
        assert db.get(Answer, (attempt_id, ver_id)).response == shown[1]
    again = client.get(f"/ujian/soal/{position}").text
    form = again.split(f'data-item="{ver_id}"')[1].split("</form>")[0]
    assert re.findall(r'value="(\d+)" checked', form) == ["2"]


def test_a_real_option_id_is_refused(app, logins, database):
    nip, token = logins[0]
    client, attempt_id = api_taker(app, nip, token, "PC-1")
    form = codes_of(database, attempt_id)
    client.get("/api/v1/taker/attempt")
    ver_id, _, _ = form["VER-1"]
    mul_id, _, _ = form["MUL-1"]
    key = next(real for real, label, _ in authored(database, "VER-1") if label == "C")
    mul_real = authored(database, "MUL-1")[0][0]
    assert key > 5 and mul_real > 4  # not a place of these items (NUM-1 and FIG come first)
    for item_id, response in ((ver_id, key), (mul_id, [mul_real]), (ver_id, 0),
                              (ver_id, 6), (mul_id, [1, 5])):
        refused = client.put(f"/api/v1/taker/answers/{item_id}",
                             json={"response": response, "seq": 1})
        assert refused.status_code == 422, (response, refused.text)
        assert refused.json()["code"] == "taker.error_response"
    with database.transaction(write=False) as db:
        assert db.scalar(select(Answer.item_id).where(Answer.attempt_id == attempt_id)) is None
