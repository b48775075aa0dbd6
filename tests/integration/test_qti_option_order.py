"""A QTI choice marked fixed="true" ("none of the above") keeps its place on every taker's
form, while the other choices are shuffled; the author's choice ids reach the form builder."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.bank.models import Item, ItemOption
from app.delivery import attempts
from app.delivery.models import AttemptItem
from tests.factories import make_open_session, run_import

SINGLE = (Path(__file__).resolve().parents[1] / "fixtures" / "qti" / "qti21_single.xml") \
    .read_bytes().replace(b'<simpleChoice identifier="D">',
                          b'<simpleChoice identifier="D" fixed="true">')
BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Urutan pilihan
sections:
  - title: Numerik
    time_limit_minutes: 10
    picks:
      - {bank: QTI-URUT, construct: potensi.numerik, count: 1}
"""
SECRET = "s" * 40


def test_a_fixed_choice_stays_last_for_every_taker(db, clock):
    run_import(db, clock, "urut.xml", SINGLE, code="QTI-URUT", title="Urutan",
               kind="potensi", default_construct="potensi.numerik")
    _, logins = make_open_session(db, clock, secret=SECRET, participants=12,
                                  blueprint_yaml=BLUEPRINT)
    ids = dict(db.execute(select(ItemOption.label, ItemOption.id).join(
        Item, Item.id == ItemOption.item_id).where(Item.code == "NUM-001")).all())
    orders = []
    for nip, token in logins:
        attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-2:]}",
                                 client_addr="10.0.0.1", secret=SECRET, now=clock.now()).attempt
        orders += [tuple(o) for o in db.scalars(select(AttemptItem.option_order).where(
            AttemptItem.attempt_id == attempt.id))]
    assert len(orders) == 12 and all(order[-1] == ids["D"] for order in orders)
    assert len({order[:3] for order in orders}) > 1  # A, B and C are still shuffled
