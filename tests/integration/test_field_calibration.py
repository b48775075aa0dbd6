"""Item calibration from the field: 300 simulated takers with known 2PL items answer through
the delivery services; the estimates come from exactly their answers, recover the items'
difficulty, and an admin adopts them into a new bank version (audited, identical content
apart from the parameters), from the service and from `cact bank calibrate`."""

from __future__ import annotations

import csv
import io
import math
import random

import numpy as np
import pytest
from sqlalchemy import func, select

from app import audit
from app.analysis.calibration import calibrate
from app.analysis.field_calibration import (
    CalibrationRefused,
    adopt_calibration,
    calibrate_version,
)
from app.audit import AuditEvent
from app.bank.export import version_document
from app.bank.models import BankVersion, Item, ItemBank, ItemOption
from app.delivery import attempts, saving, timing
from app.delivery.models import Answer, AttemptItem
from tests.factories import UNTIMED, bank_zip, make_open_session, run_import
from tests.integration.test_demo_and_cli import cact as run_cact

SECRET = "c" * 40  # the participants' tokens: only the delivery calls below read them
TAKERS = 300
TRUE = {f"NUM-{n:02d}": (1.0 + (n % 5) * 0.25, -1.5 + 3 * (n - 1) / 11) for n in range(1, 13)}

BANK = {
    "format": "cact-itembank/1",
    "bank": {"code": "KAL-POT", "title": "Kalibrasi", "kind": "potensi"},
    "items": [
        *({"code": code, "kind": "single", "construct": "potensi.numerik",
           "stem": f"<p>Soal {code}</p>",
           "options": [{"id": "A", "text": "satu", "key": True}, {"id": "B", "text": "dua"},
                       {"id": "C", "text": "tiga"}]} for code in TRUE),
        {"code": "EMO-01", "kind": "weighted", "construct": "potensi.kecerdasan_emosional",
         "stem": "<p>Rekan Anda marah. Anda …</p>",
         "options": [{"id": "A", "text": "mendengarkan", "weight": 5},
                     {"id": "B", "text": "membalas", "weight": 1}]},
    ],
}
BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Kalibrasi
sections:
  - title: Kognitif
    time_limit_minutes: 30
    picks:
      - {bank: KAL-POT, construct: potensi.numerik, count: 12}
      - {bank: KAL-POT, construct: potensi.kecerdasan_emosional, count: 1}
"""


@pytest.fixture
def answered(database, clock):
    """300 takers, theta ~ N(0, 1), right with the 2PL probability of TRUE; returns the
    version id."""
    with database.transaction() as db:
        run_import(db, clock, "kal.zip", bank_zip(BANK, media={}))
        # Options are shuffled per taker, so a strong taker's 13 answers can by chance sit at
        # one place 10 times running; the straight-lining rule would then leave them out.
        # Runs longer than the form never happen: every attempt counts, whatever the shuffle.
        _, logins = make_open_session(db, clock, secret=SECRET, participants=TAKERS,
                                      blueprint_yaml=BLUEPRINT, validity={
                                          **UNTIMED, "straight_run": 14})
        code_of = dict(db.execute(select(Item.id, Item.code)).all())
        options = {}
        for item_id, oid, key in db.execute(select(ItemOption.item_id, ItemOption.id,
                                                   ItemOption.is_key)):
            options.setdefault(item_id, {})[key] = options.get(item_id, {}).get(key, oid)
        rng = random.Random(11)
        for nip, token in logins:
            theta = rng.gauss(0, 1)
            attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-3:]}",
                                     client_addr="10.0.0.1", secret=SECRET,
                                     now=clock.now()).attempt
            timing.start(db, attempt=attempt, now=clock.now())
            form = db.scalars(select(AttemptItem.item_id).where(
                AttemptItem.attempt_id == attempt.id).order_by(AttemptItem.position)).all()
            # In code order, not the shuffled form's: the same random draw for the same item on
            # every run, so the estimates are the same on every run.
            for seq, item_id in enumerate(sorted(form, key=code_of.__getitem__), 1):
                a, b = TRUE.get(code_of[item_id], (1.0, 0.0))
                right = rng.random() < 1 / (1 + math.exp(-a * (theta - b)))
                saving.save_answer(db, attempt=attempt, item_id=item_id,
                                   response=options[item_id].get(right,
                                                                 options[item_id][False]),
                                   seq=seq, flagged=False,
                                   workstation=f"PC-{nip[-3:]}", grace_s=15, now=clock.now())
            timing.submit(db, attempt=attempt, reason="taker", actor="taker:test",
                          now=clock.now())
        return db.scalar(select(BankVersion.id).join(ItemBank, ItemBank.id == BankVersion.bank_id)
                         .where(ItemBank.code == "KAL-POT"))


def right_wrong(db) -> tuple[list[str], list[list[float]]]:
    """The response matrix read straight from the answers and keys, for comparison."""
    codes = sorted(TRUE)
    keyed = {oid for oid, in db.execute(select(ItemOption.id).where(ItemOption.is_key))}
    code_of = dict(db.execute(select(Item.id, Item.code)).all())
    rows: dict[int, dict[str, float]] = {}
    for attempt_id, item_id, response in db.execute(
            select(Answer.attempt_id, Answer.item_id, Answer.response)):
        if code_of[item_id] in TRUE:
            rows.setdefault(attempt_id, {})[code_of[item_id]] = float(response in keyed)
    return codes, [[rows[a][c] for c in codes] for a in sorted(rows)]


def estimates_come_from_the_answers_and_recover_the_items(answered, database):
    with database.transaction(write=False) as db:
        done = calibrate_version(db, bank_version_id=answered)
        codes, matrix = right_wrong(db)
    result = done.calibration
    assert result.persons == TAKERS and result.converged
    assert [i.code for i in result.items] == codes and done.not_dichotomous == ["EMO-01"]
    assert result.too_few == () and result.no_variance == ()
    assert result == calibrate(codes, matrix, model="2PL")  # exactly these answers, no others
    b = np.array([i.b for i in result.items])
    truth = np.array([TRUE[c][1] for c in codes])
    assert np.corrcoef(b, truth)[0, 1] > 0.95
    assert float(np.sqrt(np.mean((b - truth) ** 2))) < 0.35
    assert all(i.se_b is not None and 0 < i.se_b < 0.5 for i in result.items)
    assert done.current == dict.fromkeys(codes, (None, None, None))


def adopting_makes_a_new_version_with_only_the_parameters_changed(answered, database, clock):
    with database.transaction() as db:
        with pytest.raises(CalibrationRefused) as refused:
            adopt_calibration(db, bank_version_id=answered, min_responses=TAKERS + 1,
                              reason="uji", actor="admin", actor_id=None, now=clock.now())
        assert refused.value.key == "calibration.refused_nothing"
        assert refused.value.params == {"too_few": 12, "min": TAKERS + 1, "no_variance": 0}
        assert db.scalar(select(func.count()).select_from(BankVersion)) == 2  # nothing stored
        with pytest.raises(CalibrationRefused, match="calibration.refused_reason"):
            adopt_calibration(db, bank_version_id=answered, reason=" ", actor="admin",
                              actor_id=None, now=clock.now())
        done, outcome = adopt_calibration(
            db, bank_version_id=answered, reason="Kalibrasi setelah pemetaan 2026",
            actor="admin", actor_id=None, now=clock.now())
        assert outcome.created and outcome.version == 2
        old = version_document(db, db.get_one(BankVersion, answered))
        new = version_document(db, db.get_one(BankVersion, outcome.version_id))
        estimates = {i.code: i for i in done.calibration.items}
        for before, after in zip(old["items"], new["items"], strict=True):
            code = before["code"]
            if code in estimates:
                assert after.pop("irt") == {"a": round(estimates[code].a, 4),
                                            "b": round(estimates[code].b, 4)}
            assert after == before  # stem, options, keys, construct: untouched
        again = adopt_calibration(db, bank_version_id=answered, reason="sekali lagi",
                                  actor="admin", actor_id=None, now=clock.now())[1]
        assert not again.created and again.version == 2  # the same numbers, the same version
        rows = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "bank.calibration_adopt").order_by(AuditEvent.id)).all()
        assert [r.target for r in rows] == ["bank:KAL-POT/v1"] * 2
        assert rows[0].data["reason"] == "Kalibrasi setelah pemetaan 2026"
        assert rows[0].data["calibrated"] == 12 and rows[0].data["new_version"] == 2
        assert rows[0].data["persons"] == TAKERS and rows[0].data["model"] == "2PL"
        assert audit.verify(db).ok


def cli_calibrates_writes_the_csv_and_adopts(answered, database, tmp_path, secret):
    out = tmp_path / "kalibrasi.csv"

    def cact(*args):
        return run_cact(database.url, *args, extra_env={"CACT_SECRET_KEY": secret})

    newest = cact("bank", "calibrate", "KAL-POT")  # v2: nobody took it yet
    assert newest.returncode == 0 and "KAL-POT v2: no finished attempt" in newest.stdout
    assert "--version N" in newest.stdout
    shown = cact("bank", "calibrate", "KAL-POT", "--version", "1", "--out",
                 str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"{TAKERS} persons, 12 items calibrated (converged" in shown.stdout
    assert "1 items are not single-answer" in shown.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [r["item_code"] for r in rows] == sorted(TRUE)
    assert all(r["status"] == "calibrated" and int(r["n"]) == TAKERS for r in rows)
    assert cact("bank", "calibrate", "KAL-POT", "--adopt").returncode == 2
    few = cact("bank", "calibrate", "KAL-POT", "--version", "1",
               "--min-responses", str(TAKERS + 1), "--adopt", "--reason", "uji")
    assert few.returncode == 1
    assert "tidak ada butir yang dapat dikalibrasi: 12 butir" in few.stderr + few.stdout
    adopted = cact("bank", "calibrate", "KAL-POT", "--version", "1", "--model",
                   "1pl", "--adopt", "--reason", "Kalibrasi 1PL")
    assert adopted.returncode == 0, adopted.stderr
    assert "Adopted: KAL-POT version 3 (new version)" in adopted.stdout
    with database.transaction(write=False) as db:
        slopes = set(db.scalars(select(Item.irt_a).join(
            BankVersion, BankVersion.id == Item.bank_version_id).where(
            BankVersion.version == 3, Item.code.in_(sorted(TRUE)))))
        assert len(slopes) == 1  # one common a: the 1PL


def the_page_shows_and_adopts(admin, version_id):
    """The admin's page: the analysis links to it, the table, the CSV, a refusal without a
    reason (in Indonesian, nothing stored) and an adoption of the same 2PL numbers the service
    adopted already (no new version, and the page says so)."""
    analysis = admin.get(f"/admin/analysis/{version_id}")
    assert f'href="/admin/analysis/{version_id}/calibration?"' in analysis.text
    page = admin.get(f"/admin/analysis/{version_id}/calibration")
    assert page.status_code == 200
    assert page.text.count('<tr data-code="NUM-') == 12
    assert f"{TAKERS} peserta, 12 butir dikalibrasi; konvergen" in page.text
    assert "1 butir bukan pilihan tunggal" in page.text
    listed = admin.get(f"/admin/analysis/{version_id}/calibration?min_responses={TAKERS + 1}")
    assert 'data-testid="calibration-too-few"' in listed.text
    assert 'data-testid="calibration-adopt"' not in listed.text  # nothing to adopt
    sheet = admin.get(f"/admin/analysis/{version_id}/calibration.csv?model=1PL")
    assert sheet.status_code == 200 and "kalibrasi-KAL-POT-v1-1PL.csv" in \
        sheet.headers["content-disposition"]
    assert admin.get(f"/admin/analysis/{version_id}/calibration?model=3PL").status_code == 422
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"csrf_token": token, "model": "2PL", "min_responses": "200", "session": ""}
    refused = admin.post(f"/admin/analysis/{version_id}/calibration",
                         data={**form, "reason": "  "})
    assert refused.status_code == 422 and "alasan wajib diisi" in refused.text
    done = admin.post(f"/admin/analysis/{version_id}/calibration",
                      data={**form, "reason": "Dari halaman"}, follow_redirects=True)
    assert done.status_code == 200
    assert "sudah tersimpan sebagai KAL-POT versi 2" in done.text


def test_estimated_then_adopted_by_the_service_then_by_the_cli(answered, database, clock,
                                                               tmp_path, admin, settings):
    """One set of 300 attempts for all (they take a while to simulate): the estimates, then
    the service adopts the 2PL ones as version 2, the CLI the 1PL ones as version 3, and the
    page the 2PL ones again."""
    estimates_come_from_the_answers_and_recover_the_items(answered, database)
    adopting_makes_a_new_version_with_only_the_parameters_changed(answered, database, clock)
    cli_calibrates_writes_the_csv_and_adopts(answered, database, tmp_path,
                                             settings.resolved_secret())
    the_page_shows_and_adopts(admin, answered)
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "bank.calibration_adopt")) == 4  # service 2, CLI 1, page 1
