"""The standard error of measurement beside every level of the report: 40 takers answer a
fixed six-item kompetensi form through the delivery services, and the SEM on the report page
and in the PDF equals the one computed here from the raw scores alone (population SD x
sqrt(1 - alpha), as percent of the form's maximum), with the levels of score -/+ one SEM."""

from __future__ import annotations

import io
import math
import random
from decimal import Decimal

import numpy as np
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from app.bank.models import Item, ItemOption
from app.delivery import attempts, saving, timing
from app.delivery.models import Answer, AttemptItem
from app.reports.service import participant_report, session_reports
from app.scoring.models import ConstructScore, Result
from app.scoring.service import score_pending
from app.sessions.models import TestSession
from tests.factories import bank_zip, make_open_session, run_import

SECRET = "s" * 40
TAKERS = 40
WEIGHTS = (1, 2, 3, 4)
CUTS = (40, 56, 73, 90)
CONSTRUCT = "kompetensi.integritas"

BANK = {
    "format": "cact-itembank/1",
    "bank": {"code": "UJI-KOM", "title": "Kompetensi uji", "kind": "kompetensi"},
    "scoring": {"levels": {CONSTRUCT: {"scale": "percent", "cut_scores": list(CUTS)}}},
    "items": [
        {"code": f"INT-{n}", "kind": "weighted", "construct": CONSTRUCT,
         "stem": f"<p>Situasi {n}: Anda …</p>",
         "options": [{"id": label, "text": f"pilihan {label}", "weight": weight}
                     for label, weight in zip("ABCD", WEIGHTS, strict=True)]}
        for n in range(1, 7)],
}
BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Uji kompetensi
sections:
  - title: Kompetensi
    time_limit_minutes: 30
    picks:
      - {bank: UJI-KOM, construct: kompetensi.integritas, count: 6}
"""


@pytest.fixture
def scored(database, clock):
    with database.transaction() as db:
        run_import(db, clock, "kom.zip", bank_zip(BANK, media={}))
        session, logins = make_open_session(db, clock, secret=SECRET, participants=TAKERS,
                                            blueprint_yaml=BLUEPRINT)
        weight_of = {oid: int(w) for oid, w in db.execute(
            select(ItemOption.id, ItemOption.weight).where(ItemOption.weight.is_not(None)))}
        options = {}
        for item_id, oid in db.execute(select(ItemOption.item_id, ItemOption.id)
                                       .join(Item, Item.id == ItemOption.item_id)
                                       .where(Item.construct == CONSTRUCT)):
            options.setdefault(item_id, []).append(oid)
        rng = random.Random(7)
        for nip, token in logins:
            ability = rng.gauss(0, 1)  # one trait behind all six answers: alpha well above 0
            attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-3:]}",
                                     client_addr="10.0.0.1", secret=SECRET,
                                     now=clock.now()).attempt
            timing.start(db, attempt=attempt, now=clock.now())
            # In item order, not the shuffled form's: the same draws on every run.
            form = db.scalars(select(AttemptItem).where(AttemptItem.attempt_id == attempt.id)
                              .order_by(AttemptItem.item_id)).all()
            for seq, entry in enumerate(form, 1):
                wanted = min(4, max(1, round(2.5 + 1.1 * ability + rng.gauss(0, 0.8))))
                choice = next(o for o in options[entry.item_id] if weight_of[o] == wanted)
                saving.save_answer(db, attempt=attempt, item_id=entry.item_id, response=choice,
                                   seq=seq, flagged=False, workstation=f"PC-{nip[-3:]}",
                                   grace_s=15, now=clock.now())
            timing.submit(db, attempt=attempt, reason="taker", actor="taker:test",
                          now=clock.now())
    with database.transaction() as db:
        score_pending(db, now=clock.now())  # whatever the hand-in did not score yet
        assert db.scalar(select(func.count()).select_from(Result)) == TAKERS
    return logins


def expected_sem(db) -> float:
    """Cronbach's alpha and the SEM from the item scores, written out here from the formula
    (population variances), as percent of the six items' maximum."""
    weight_of = {oid: float(w) for oid, w in db.execute(
        select(ItemOption.id, ItemOption.weight).where(ItemOption.weight.is_not(None)))}
    rows: dict[int, dict[int, float]] = {}
    for attempt_id, item_id, response in db.execute(
            select(Answer.attempt_id, Answer.item_id, Answer.response)):
        rows.setdefault(attempt_id, {})[item_id] = weight_of[response]
    matrix = np.array([[row[i] for i in sorted(row)] for row in rows.values()])
    assert matrix.shape == (TAKERS, 6)
    k = matrix.shape[1]
    totals = matrix.sum(axis=1)
    alpha = k / (k - 1) * (1 - matrix.var(axis=0).sum() / totals.var())
    assert 0.5 < alpha < 1  # the simulation measures one thing
    return float(totals.std() * math.sqrt(1 - alpha) / (6 * max(WEIGHTS)) * 100)


def level_of(percent: float) -> int:
    return 1 + sum(percent >= cut for cut in CUTS)


def test_every_level_has_its_sem_and_range(scored, database):
    with database.transaction(write=False) as db:
        sem = expected_sem(db)
        session = db.scalars(select(TestSession)).one()
        percents = {a: float(p) for a, p in db.execute(
            select(ConstructScore.attempt_id, ConstructScore.percent)
            .where(ConstructScore.construct == CONSTRUCT))}
        reports = session_reports(db, session=session)
        single = participant_report(db, session=session, nip=scored[0][0])
    assert len(reports) == TAKERS and len(percents) == TAKERS
    by_nip = {r.nip: r for r in reports}
    assert single.competencies[0].sem == pytest.approx(by_nip[single.nip].competencies[0].sem)
    spans = 0
    for report, percent in zip(sorted(reports, key=lambda r: r.nip),
                               [percents[k] for k in sorted(percents)], strict=True):
        line = report.competencies[0]
        assert line.code == "integritas" and line.achieved == level_of(percent)
        assert line.sem == pytest.approx(sem, rel=1e-9)
        assert (line.low, line.high) == (level_of(percent - sem), level_of(percent + sem))
        assert line.low <= line.achieved <= line.high
        spans += line.low < line.high
    assert spans > 0  # with an SEM of several points some scores sit near a cut


def test_page_and_pdf_show_the_sem(scored, admin, database):
    nip = scored[0][0]
    with database.transaction(write=False) as db:
        sem = expected_sem(db)
        report = participant_report(db, session=db.scalars(select(TestSession)).one(), nip=nip)
    line = report.competencies[0]
    page = admin.get(f"/admin/sessions/S1/results/{nip}")
    assert page.status_code == 200
    cell = page.text.split('data-testid="sem-integritas">', 1)[1].split("</td>", 1)[0]
    assert cell == f"{sem:.1f}".replace(".", ",") + f" (level {line.low}–{line.high})"
    assert "galat baku pengukuran" in page.text

    pdf = admin.get(f"/admin/sessions/S1/results/{nip}.pdf")
    assert pdf.status_code == 200
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "SEM" in text and f"{sem:.1f}".replace(".", ",") in text
    assert "galat baku pengukuran" in text
    assert Decimal(str(line.sem)).quantize(Decimal("0.1")) == Decimal(f"{sem:.1f}")
