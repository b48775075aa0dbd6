"""A QTI multiple-response item scored with match_correct, through the taker API and the scorer:
ticking every choice scores 0, exactly the correct set scores the full points, a part of it 0
(QTI gives the score only when the selected set is the correct set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.delivery.models import Attempt
from app.scoring.models import ConstructScore, Result
from app.scoring.service import score_pending
from app.sessions.models import Participant, RosterEntry
from tests.factories import make_open_session, run_import

FIXTURE = (Path(__file__).resolve().parents[1] / "fixtures" / "qti" / "qti22_multiple.xml")
# The same item with the match_correct template instead of its mapping.
MATCH_CORRECT = FIXTURE.read_bytes().split(b"<mapping", 1)[0] + \
    FIXTURE.read_bytes().split(b"</mapping>", 1)[1].replace(b"map_response", b"match_correct")
BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Pilihan ganda kompleks
sections:
  - title: Verbal
    time_limit_minutes: 10
    picks:
      - {bank: QTI-MR, construct: potensi.verbal, count: 1}
"""
KEYED = {"pandai", "pintar"}  # ChoiceA and ChoiceC


@pytest.fixture
def logins(database, settings, clock):
    assert b"<mapping" not in MATCH_CORRECT and b"match_correct" in MATCH_CORRECT
    with database.transaction() as db:
        run_import(db, clock, "sinonim.xml", MATCH_CORRECT, code="QTI-MR", title="Sinonim",
                   kind="potensi", default_construct="potensi.verbal")
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=3, blueprint_yaml=BLUEPRINT)
    return logins


def answer(app, nip: str, token: str, pick) -> None:
    client = TestClient(app)
    login = client.post("/api/v1/taker/login",
                        json={"nip": nip, "token": token, "workstation": f"PC-{nip[-2:]}"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    [item] = client.get("/api/v1/taker/attempt").json()["items"]
    places = [o["id"] for o in item["options"] if pick(o["content"])]
    saved = client.put(f"/api/v1/taker/answers/{item['item_id']}",
                       json={"response": places, "seq": 1})
    assert saved.status_code == 200 and saved.json()["accepted"], saved.text
    assert client.post("/api/v1/taker/submit").status_code == 200


def score_of(database, nip: str) -> tuple:
    with database.transaction(write=False) as db:
        attempt_id = db.scalar(select(Attempt.id).join(RosterEntry).join(Participant)
                               .where(Participant.nip == nip))
        score = db.scalars(select(ConstructScore).where(
            ConstructScore.attempt_id == attempt_id,
            ConstructScore.construct == "potensi.verbal")).one()
        assert db.scalar(select(Result.id).where(Result.attempt_id == attempt_id))
        return score.raw, score.max_raw


def test_ticking_everything_scores_nothing(app, logins, database, clock):
    (everything, t1), (exactly, t2), (half, t3) = logins
    answer(app, everything, t1, lambda _text: True)
    answer(app, exactly, t2, lambda text: text in KEYED)
    answer(app, half, t3, lambda text: text == "pandai")
    with database.transaction() as db:
        score_pending(db, now=clock.now())
    assert score_of(database, everything) == (0, 2)
    assert score_of(database, exactly) == (2, 2)
    assert score_of(database, half) == (0, 2)
