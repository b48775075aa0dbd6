"""The form as bytes: ``GET /api/v1/taker/attempt`` is joined from each item's JSON parts,
encoded once per process, with the taker's places, answers and flags put in. It must say
exactly what the view the page is built from says, in every state of an attempt; and the logins
and starts of a room go through the group commit with the audit chain intact."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from sqlalchemy import insert, select, update

from app import audit
from app.bank.models import BankPassage, Item, ItemKind
from app.delivery import attempts, content, saving, timing
from app.delivery.models import AttemptItem
from app.delivery.views import attempt_bytes, attempt_json, attempt_view
from tests.conftest import run_coroutine
from tests.factories import make_open_session


def _both(db, attempt, now) -> tuple[dict, dict]:
    joined = json.loads(attempt_bytes(db, attempt=attempt, now=now))
    built = json.loads(attempt_json(attempt_view(db, attempt=attempt, now=now)))
    return joined, built


@pytest.fixture
def sitting(database, settings, clock):
    """One taker logged in on a bank whose multiple-response item has choice limits and whose
    first single-choice item reads a passage (set before anything of the bank is cached)."""
    secret = settings.resolved_secret()
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=secret, participants=2)
        # Written past the frozen-version guard (plain SQL): a bank imported with a passage
        # and choice limits, as tests/integration/test_passages.py imports them for real.
        multiple = db.scalars(select(Item).where(Item.kind == ItemKind.multiple)).first()
        single = db.scalars(select(Item).where(Item.kind == ItemKind.single)).first()
        db.execute(update(Item.__table__).where(Item.__table__.c.id == multiple.id).values(
            scoring={**(multiple.scoring or {}), "min_choices": 2, "max_choices": 3}))
        db.execute(insert(BankPassage.__table__).values(
            bank_version_id=single.bank_version_id, code="P1", title='Kisah "pagi"',
            content="<p>Pagi itu — hujan.</p>"))
        db.execute(update(Item.__table__).where(Item.__table__.c.id == single.id)
                   .values(passage="P1"))
        db.expire_all()
        nip, token = logins[0]
        attempt = attempts.login(db, nip=nip, token=token, workstation="PC-1",
                                 client_addr="10.0.0.1", secret=secret, now=clock.now()).attempt
    return attempt.id


def test_the_joined_form_says_what_the_view_says_in_every_state(database, clock, sitting):
    from app.delivery.models import Attempt

    def check(expect_state: str) -> dict:
        with database.transaction(write=False) as db:
            joined, built = _both(db, db.get_one(Attempt, sitting), clock.now())
        assert joined == built
        assert joined["state"] == expect_state
        return joined

    form = check("not_started")
    assert any(i["passage"] == "<p>Pagi itu — hujan.</p>" and i["passage_title"] ==
               'Kisah "pagi"' for i in form["items"])
    assert any(i["min_choices"] == 2 and i["max_choices"] == 3 for i in form["items"])
    with database.transaction() as db:
        attempt = db.get_one(Attempt, sitting)
        timing.start(db, attempt=attempt, now=clock.now())
    form = check("active")
    hidden = [i for i in form["items"] if i["section"] > 0]
    assert hidden and all(i["stem"] is None and i["options"] == [] for i in hidden)
    with database.transaction() as db:  # answers of every kind, one flagged, one changed twice
        attempt = db.get_one(Attempt, sitting)
        rows = db.execute(select(AttemptItem.item_id, AttemptItem.option_order, Item.kind)
                          .join(Item, Item.id == AttemptItem.item_id)
                          .where(AttemptItem.attempt_id == sitting,
                                 AttemptItem.section == 0)).all()
        for seq, (item_id, order, kind) in enumerate(rows, 1):
            response = order[:2] if kind == ItemKind.multiple else order[-1]
            saving.save_answer(db, attempt=attempt, item_id=item_id, response=response,
                               seq=seq, flagged=seq == 1, workstation="PC-1", grace_s=15,
                               now=clock.now())
    form = check("active")
    answered = [i for i in form["items"] if i["response"] is not None]
    assert len(answered) == len(rows) and answered[0]["flagged"] is True
    with database.transaction() as db:
        timing.next_section(db, attempt=db.get_one(Attempt, sitting), now=clock.now())
    form = check("active")
    assert all(i["stem"] for i in form["items"] if i["section"] == 1)
    with database.transaction() as db:
        timing.submit(db, attempt=db.get_one(Attempt, sitting), reason="taker",
                      actor="test", now=clock.now())
    check("submitted")


def test_item_parts_of_a_frozen_bank_are_encoded_once(database, clock, sitting):
    with database.transaction(write=False) as db:
        item_ids = set(db.scalars(select(AttemptItem.item_id)
                                  .where(AttemptItem.attempt_id == sitting)))
        items, options = content.contents(db, item_ids)
        first = content.encoded(db, items, options)
        again = content.encoded(db, *content.contents(db, item_ids))
        assert set(first) == item_ids
        assert all(again[i] is first[i] for i in item_ids)  # kept, not encoded again
        some = next(iter(item_ids))
        assert json.loads(b"{" + first[some].shown + b"}")["stem"] == items[some].stem


def test_a_room_logs_in_through_the_group_commit_with_the_audit_chain_whole(
        app, database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=12)
    batcher = app.state.save_batcher
    commits_before, works_before = batcher.commits, batcher.saves

    async def room():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            calls = [http.post("/api/v1/taker/login",
                               json={"nip": nip, "token": token, "workstation": f"PC-{n}"})
                     for n, (nip, token) in enumerate(logins)]
            calls.append(http.post("/api/v1/taker/login", json={
                "nip": logins[0][0], "token": "WRONG-TOKEN", "workstation": "PC-X"}))
            return await asyncio.gather(*calls)

    responses = run_coroutine(room())
    statuses = [r.status_code for r in responses]
    assert statuses[:-1] == [200] * 12 and statuses[-1] == 401
    assert batcher.saves - works_before == 13  # 12 logins and one counted failure
    assert batcher.commits - commits_before < 13  # some shared a commit
    with database.transaction(write=False) as db:
        assert audit.verify(db).ok
        logged = db.scalars(select(audit.AuditEvent.target)
                            .where(audit.AuditEvent.action == "taker.login")).all()
        assert len(logged) == len(set(logged)) == 12
        assert len(db.scalars(select(audit.AuditEvent.id)
                              .where(audit.AuditEvent.action == "taker.login_failed")).all()) == 1
