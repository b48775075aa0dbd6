"""Scoring wired into the product, on SQLite and PostgreSQL: answers given through the delivery
services, hand-computed construct scores, levels, JPM, category, potensi band and nine-box;
idempotence, rescoring, key corrections, job standards, kinerja ratings and the exports.

The scenario (every number below is computed by hand from the two small banks here):

Potensi bank (tests.factories, scoring points 5/0): NUM-1 (single, key B, cut scores
5/10/15/20), FIG-1 (single, key A), MUL-1 (multiple A 2.5, B 2.5, C -1; bounds 0..5), EMO-1
(weighted A 5, B 1), LIK-1 (likert 1..5, reverse keyed).
Kompetensi bank (below): integritas INT-1, INT-2 and kerjasama KER-1, KER-2, each weighted
A 5 / B 3 / C 1, cut scores 3/5/7/9 (raw 0-10).

Participant 1, administrator (required level 3): NUM-1 B (5), FIG-1 B (0), MUL-1 A+C (1.5),
EMO-1 A (5), LIK-1 option "2" (reversed: 4); INT-1 A, INT-2 B (8 -> level 4), KER-1 C,
KER-2 blank (1 -> level 1). Total 24.5. Potensi aspects: kemampuan intelektual 6.5/15 =
43.33 %, kecerdasan emosional 100 %, motivasi 80 %: mean 74.44 -> Menengah. JPM
(4 + 1) / (3 + 3) = 83.33 -> Cukup Optimal. Combined (40/60) from the unrounded values:
0.4 x 670/9 + 0.6 x 250/3 = 718/9 = 79.78 (not 79.77, which the rounded 74.44 and 83.33 give).

Participant 2, pengawas (required 2): submits without answers. Everything 0, levels 1,
JPM (1 + 1) / (2 + 2) = 50 -> Kurang Optimal; potensi 0 -> Rendah.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app import audit
from app.bank.models import Item, ItemOption
from app.delivery import attempts, saving, timing
from app.delivery.models import Attempt, AttemptItem, AttemptState
from app.reports.export import response_rows, results_table, to_csv, to_xlsx
from app.scoring import engine
from app.scoring.corrections import correct_key
from app.scoring.models import ConstructScore, JobStandard, PerformanceRating, Result
from app.scoring.outcomes import ScoringConfig
from app.scoring.service import (
    pending_attempts,
    rescore_session,
    score_attempt,
    score_pending,
    score_session,
)
from app.scoring.standards import load_default_standards
from app.sessions.models import Participant, RosterEntry
from app.sessions.service import change_state
from tests.factories import bank_doc, bank_zip, make_open_session, run_import

SECRET = "s" * 40

KOMPETENSI_DOC = {
    "format": "cact-itembank/1",
    "bank": {"code": "UJI-KOM", "title": "Bank kompetensi uji", "kind": "kompetensi"},
    "scoring": {"levels": {"kompetensi.integritas": {"cut_scores": [3, 5, 7, 9]},
                           "kompetensi.kerjasama": {"cut_scores": [3, 5, 7, 9]}}},
    "items": [
        {"code": code, "kind": "weighted", "construct": construct,
         "stem": f"<p>Situasi {code}</p>",
         "options": [{"id": "A", "text": "terbaik", "weight": 5},
                     {"id": "B", "text": "cukup", "weight": 3},
                     {"id": "C", "text": "kurang", "weight": 1}]}
        for code, construct in (("INT-1", "kompetensi.integritas"),
                                ("INT-2", "kompetensi.integritas"),
                                ("KER-1", "kompetensi.kerjasama"),
                                ("KER-2", "kompetensi.kerjasama"))
    ],
}

BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Uji skor
sections:
  - title: Potensi
    time_limit_minutes: 10
    picks:
      - {bank: UJI-POT, construct: potensi.numerik, count: 1}
      - {bank: UJI-POT, construct: potensi.figural, count: 1}
      - {bank: UJI-POT, construct: potensi.verbal, count: 1}
      - {bank: UJI-POT, construct: potensi.kecerdasan_emosional, count: 1}
      - {bank: UJI-POT, construct: potensi.motivasi_komitmen, count: 1}
  - title: Kompetensi
    time_limit_minutes: 10
    picks:
      - {bank: UJI-KOM, construct: kompetensi.integritas, count: 2}
      - {bank: UJI-KOM, construct: kompetensi.kerjasama, count: 2}
"""

# Participant 1's answers: item code -> option labels (a list for multiple-response items).
ANSWERS_1 = {"NUM-1": "B", "FIG-1": "B", "MUL-1": ["A", "C"], "EMO-1": "A", "LIK-1": "2",
             "INT-1": "A", "INT-2": "B", "KER-1": "C"}


def build_session(db, clock, *, participants=2, code="S1", secret=SECRET):
    """Both banks, the two-section blueprint, an open session; participant 1 is an
    administrator, the others pengawas."""
    run_import(db, clock, "kom.zip", bank_zip(KOMPETENSI_DOC, media={}))
    session, logins = make_open_session(db, clock, secret=secret, blueprint_yaml=BLUEPRINT,
                                        participants=participants, code=code)
    first = db.scalar(select(Participant).where(Participant.nip == logins[0][0]))
    first.job_group = "administrator"
    db.flush()
    return session, logins


def option_ids(db, codes_to_labels):
    """item code -> option id(s) for the given labels, and item code -> item id."""
    ids = {}
    for code, labels in codes_to_labels.items():
        item = db.scalar(select(Item).where(Item.code == code))
        by_label = {o.label: o.id for o in db.scalars(
            select(ItemOption).where(ItemOption.item_id == item.id))}
        ids[item.id] = ([by_label[x] for x in labels] if isinstance(labels, list)
                        else by_label[labels])
    return ids


def take_test(db, clock, nip, token, answers, *, submit=True):
    """Log in, start, answer section by section through the delivery service, hand in."""
    login = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-3:]}",
                           client_addr="10.0.0.1", secret=SECRET, now=clock.now())
    attempt = login.attempt
    timing.start(db, attempt=attempt, now=clock.now())
    by_item = option_ids(db, answers)
    form = list(db.scalars(select(AttemptItem).where(AttemptItem.attempt_id == attempt.id)
                           .order_by(AttemptItem.position)))
    seq = 0
    for section in sorted({f.section for f in form}):
        if section > attempt.current_section:
            timing.next_section(db, attempt=attempt, now=clock.now())
        for entry in (f for f in form if f.section == section):
            if entry.item_id in by_item:
                seq += 1
                saving.save_answer(db, attempt=attempt, item_id=entry.item_id,
                                     response=by_item[entry.item_id], seq=seq, flagged=False,
                                     workstation=f"PC-{nip[-3:]}", grace_s=15, now=clock.now())
    if submit:
        timing.submit(db, attempt=attempt, reason="taker", actor=f"taker:{nip}",
                        now=clock.now())
    return attempt


def result_of(db, attempt):
    return db.scalar(select(Result).where(Result.attempt_id == attempt.id))


def constructs_of(db, attempt):
    return {c.construct: c for c in db.scalars(
        select(ConstructScore).where(ConstructScore.attempt_id == attempt.id))}


def snapshot(db, attempt):
    """Every column of the attempt's scoring rows, to compare two scorings."""
    db.expire_all()
    rows = [{k: getattr(c, k) for k in ("construct", "raw", "max_raw", "percent", "level",
                                        "theta", "theta_se", "bank_version_id", "key_revision",
                                        "computed_at")}
            for c in sorted(constructs_of(db, attempt).values(), key=lambda c: c.construct)]
    result = result_of(db, attempt)
    return rows, {k: getattr(result, k) for k in ("id", "total_score", "jpm", "category",
                                                   "potensi_band", "nine_box", "detail",
                                                   "key_revision", "computed_at")}


def irt_available() -> bool:
    try:
        from app.scoring.irt import eap  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def scored(db, clock):
    session, logins = build_session(db, clock)
    one = take_test(db, clock, *logins[0], ANSWERS_1)
    two = take_test(db, clock, *logins[1], {})
    return session, logins, one, two


def test_submit_scores_the_attempt_as_computed_by_hand(db, scored):
    _, _, one, _ = scored
    scores = constructs_of(db, one)
    expected = {  # construct: (raw, max, percent, level)
        "potensi.numerik": (D(5), D(5), D(100), 2),
        "potensi.figural": (D(0), D(5), D(0), None),  # the bank has no levels for it
        "potensi.verbal": (D("1.5"), D(5), D(30), None),
        "potensi.kecerdasan_emosional": (D(5), D(5), D(100), None),
        "potensi.motivasi_komitmen": (D(4), D(5), D(80), None),
        "kompetensi.integritas": (D(8), D(10), D(80), 4),
        "kompetensi.kerjasama": (D(1), D(10), D(10), 1),
    }
    assert {c: (s.raw, s.max_raw, s.percent, s.level) for c, s in scores.items()} == expected
    assert {s.key_revision for s in scores.values()} == {0}
    # theta only where every item of a potensi construct has IRT parameters (NUM-1 only)
    assert (scores["potensi.numerik"].theta is not None) == irt_available()
    assert scores["potensi.figural"].theta is None
    assert scores["kompetensi.integritas"].theta is None
    result = result_of(db, one)
    assert result.total_score == D("24.5")
    assert result.jpm == D("83.33") and result.category == "Cukup Optimal"
    assert result.potensi_band == "Menengah" and result.nine_box is None
    detail = result.detail
    assert detail["job_key"] == "administrator"
    assert detail["required"] == {"integritas": 3, "kerjasama": 3}
    assert detail["achieved"] == {"integritas": 4, "kerjasama": 1}
    assert detail["gaps"] == {"integritas": 1, "kerjasama": -2}
    assert detail["strengths"] == ["integritas"]
    assert detail["development_areas"] == ["kerjasama"]
    assert detail["potensi_score"] == "74.44"
    assert detail["aspects"] == {"kecerdasan_emosional": "100", "kemampuan_intelektual": "43.33",
                                 "motivasi_komitmen": "80"}
    assert detail["combined_jpm"] == "79.78"
    assert detail["standard_source"] == {"integritas": "default", "kerjasama": "default"}
    assert (detail["items"], detail["answered"]) == (9, 8)


def test_blank_attempt_and_nine_box_from_a_rating(db, clock, scored):
    session, _, one, two = scored
    result = result_of(db, two)
    assert result.total_score == 0 and result.jpm == D(50)
    assert result.category == "Kurang Optimal" and result.potensi_band == "Rendah"
    assert {s.level for c, s in constructs_of(db, two).items()
            if c in ("potensi.numerik", "kompetensi.integritas")} == {1}
    for attempt, rating in ((one, "as_expected"), (two, "above")):
        db.add(PerformanceRating(participant_id=_participant_id(db, attempt), period="2025",
                                 rating=rating))
    db.add(PerformanceRating(participant_id=_participant_id(db, one), period="2024",
                             rating="below"))  # older: the latest period counts
    db.flush()
    score_session(db, session=session, now=clock.now())
    assert result_of(db, one).nine_box == 5  # as expected x medium
    assert result_of(db, two).nine_box == 4  # above x low
    assert result_of(db, one).detail["performance"] == {"period": "2025", "rating": "as_expected"}


def _participant_id(db, attempt):
    return db.scalar(select(RosterEntry.participant_id).where(
        RosterEntry.id == attempt.roster_entry_id))


def test_scoring_is_idempotent_and_a_rescore_reproduces(db, clock, scored):
    session, _, one, two = scored
    before = [snapshot(db, a) for a in (one, two)]
    clock.advance(3600)
    again = score_attempt(db, attempt=one, now=clock.now())
    assert again.id == before[0][1]["id"]
    summary = rescore_session(db, session=session, actor="user:admin", now=clock.now())
    assert (summary.scored, summary.changed, summary.unchanged, summary.changes) == (2, 0, 2, [])
    assert summary.categories == {"Cukup Optimal": 1, "Kurang Optimal": 1}
    assert [snapshot(db, a) for a in (one, two)] == before  # not even computed_at moved
    assert len(db.scalars(select(Result)).all()) == 2
    assert len(db.scalars(select(ConstructScore)).all()) == 14
    event = db.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.action == "results.rescore")).one()
    assert event.actor == "user:admin"
    assert (event.data["rescored"], event.data["changed"], event.data["unchanged"]) == (2, 0, 2)


def test_a_running_attempt_is_not_scored(db, clock):
    _, logins = build_session(db, clock)
    attempt = take_test(db, clock, *logins[0], {"NUM-1": "B"}, submit=False)
    assert result_of(db, attempt) is None
    with pytest.raises(ValueError, match="handed-in"):
        score_attempt(db, attempt=attempt, now=clock.now())


def test_key_correction_rescores_the_attempts_that_saw_the_item(db, clock, scored):
    _, _, one, two = scored
    old_two = snapshot(db, two)[1]
    fig = db.scalar(select(Item).where(Item.code == "FIG-1"))
    clock.advance(60)
    correct_key(db, item=fig, key="B", reason="kunci tertukar", actor="user:admin",
                actor_id=None, now=clock.now())
    db.expire_all()
    assert constructs_of(db, one)["potensi.figural"].raw == D(5)
    assert constructs_of(db, one)["potensi.figural"].key_revision == 1
    assert result_of(db, one).total_score == D("29.5")
    assert result_of(db, one).detail["potensi_score"] == "85.56"  # (11.5/15, 100, 80) / 3
    assert result_of(db, one).potensi_band == "Tinggi"
    new_two = snapshot(db, two)[1]
    assert new_two["total_score"] == old_two["total_score"] == 0  # blank stays 0
    assert new_two["key_revision"] == 1  # stamped with the new revision all the same
    event = db.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.action == "results.rescore_key_correction")).one()
    assert event.actor == "user:admin" and event.reason == "kunci tertukar"
    # two rescored; the blank one only carries the new key revision: it did not change
    assert (event.data["rescored"], event.data["changed"], event.data["unchanged"]) == (2, 1, 1)
    assert event.data["fields"] == {"total": 1, "potensi_score": 1, "potensi_band": 1,
                                    "combined_jpm": 1}
    assert event.data["changes"] == [{"attempt": one.id, "fields": ["total", "potensi_score",
                                                                    "potensi_band",
                                                                    "combined_jpm"],
                                      "old_total": "24.5", "new_total": "29.5",
                                      "old_jpm": "83.33", "new_jpm": "83.33"}]


def test_job_standards_from_the_table_and_jpm_cap_setting(db, clock, scored):
    session, _, one, _ = scored
    assert load_default_standards(db) == 99  # 11 job keys x 9 competencies
    db.scalar(select(JobStandard).where(JobStandard.job_key == "administrator",
                                        JobStandard.competency == "kerjasama")
              ).required_level = 1
    db.flush()
    score_session(db, session=session, now=clock.now())
    result = result_of(db, one)
    assert result.detail["required"] == {"integritas": 3, "kerjasama": 1}
    assert result.detail["standard_source"] == {"integritas": "table", "kerjasama": "table"}
    assert result.jpm == D(100) and result.category == "Optimal"  # 5/4 = 125 %, capped
    session.settings = {**session.settings, "scoring": {"jpm_cap": False, "purpose": "placement"}}
    db.flush()
    score_session(db, session=session, now=clock.now())
    result = result_of(db, one)
    assert result.jpm == D(125) and result.category == "Memenuhi Syarat"
    assert result.detail["config"]["jpm_cap"] is False


def test_performance_axis_from_jpm_and_combined_category(db, clock, scored):
    session, _, one, two = scored
    session.settings = {**session.settings,
                        "scoring": {"performance_axis": "jpm", "category_basis": "combined",
                                    "combined_weights": {"administrator": [30, 70]}}}
    db.flush()
    score_session(db, session=session, now=clock.now())
    result = result_of(db, one)
    # 0.3 x 670/9 + 0.7 x 250/3 = 242/3 = 80.666... (the rounded parts would give 80.663)
    assert result.detail["combined_jpm"] == "80.67"
    assert result.category == "Cukup Optimal" and result.jpm == D("83.33")
    assert result.nine_box == 5  # Cukup Optimal -> as expected; Menengah -> medium
    assert result_of(db, two).nine_box == 1  # Kurang Optimal x Rendah
    with pytest.raises(ValueError):
        session.settings = {"scoring": {"purpose": "promotion"}}
        ScoringConfig.from_settings(session.settings)


def test_closing_the_session_scores_everyone_who_logged_in(db, clock):
    session, logins = build_session(db, clock, participants=4)
    first = take_test(db, clock, *logins[0], ANSWERS_1, submit=False)
    idle = attempts.login(db, nip=logins[1][0], token=logins[1][1], workstation="PC-9",
                          client_addr="10.0.0.2", secret=SECRET, now=clock.now()).attempt
    running = take_test(db, clock, *logins[2], {"NUM-1": "B"}, submit=False)
    clock.advance(300)
    change_state(db, session=session, action="close", actor="user:admin", now=clock.now())
    assert {a.state for a in (first, idle, running)} == {AttemptState.submitted}
    for attempt in (first, idle, running):
        assert result_of(db, attempt) is not None, attempt.id
    assert result_of(db, first).total_score == D("24.5")
    assert result_of(db, idle).total_score == 0
    summary = score_session(db, session=session, now=clock.now())
    assert (summary.scored, summary.changed, summary.without_attempt) == (3, 0, 1)


def test_sweeper_scores_attempts_that_ran_out_of_time(db, clock):
    _, logins = build_session(db, clock)
    attempt = take_test(db, clock, *logins[0], {"NUM-1": "B", "INT-1": "A"}, submit=False)
    clock.advance(601 + 600)
    assert timing.sweep(db, now=clock.now()) == 1
    assert attempt.state == AttemptState.expired
    # The sweeper closes first and scores after, a few attempts per transaction.
    assert result_of(db, attempt) is None
    assert [a.id for a in pending_attempts(db)] == [attempt.id]
    assert score_pending(db, now=clock.now()) == 1
    assert pending_attempts(db) == [] and score_pending(db, now=clock.now()) == 0
    result = result_of(db, attempt)
    assert result is not None and result.total_score == D(10)


def test_a_failing_scoring_never_fails_the_submit(db, clock, caplog):
    session, logins = build_session(db, clock)
    session.settings = {"scoring": {"purpose": "no-such-purpose"}}  # scoring will raise
    db.flush()
    attempt = take_test(db, clock, *logins[0], {"NUM-1": "B"})
    assert attempt.state == AttemptState.submitted
    assert result_of(db, attempt) is None
    assert "scoring attempt" in caplog.text
    # the submit itself was kept, audit included
    assert db.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.action == "attempt.submit")).first() is not None


def test_exports_one_row_per_participant(db, clock, scored):
    session, logins, _, _ = scored
    table = results_table(db, session)
    text = to_csv(table).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["nip"] for r in rows] == [logins[0][0], logins[1][0]]
    first = rows[0]
    assert first["job_group"] == "administrator" and first["status"] == "scored"
    assert first["attempt_state"] == "submitted"
    assert first["total_score"] == "24.5"
    assert first["kompetensi.integritas.raw"] == "8"
    assert first["kompetensi.integritas.level"] == "4"
    assert first["potensi.verbal.percent"] == "30"
    assert first["potensi.figural.level"] == ""
    assert (first["jpm"], first["category"], first["potensi_band"], first["nine_box"]) == \
        ("83.33", "Cukup Optimal", "Menengah", "")
    assert first["potensi_score"] == "74.44" and first["combined_jpm"] == "79.78"
    assert rows[1]["jpm"] == "50" and rows[1]["category"] == "Kurang Optimal"

    from openpyxl import load_workbook

    responses = response_rows(db, session)
    book = load_workbook(io.BytesIO(to_xlsx(table, responses)))
    assert book.sheetnames == ["Hasil", "Jawaban"]
    sheet = list(book["Hasil"].iter_rows(values_only=True))
    header = sheet[0]
    assert sheet[1][0] == logins[0][0]  # NIP kept as text, all 18 digits
    assert sheet[1][header.index("total_score")] == 24.5
    assert sheet[1][header.index("jpm")] == 83.33
    answers = list(book["Jawaban"].iter_rows(values_only=True))
    assert answers[0] == ("nip", "item_code", "position", "response", "score")
    mine = {r[1]: (r[3], r[4]) for r in answers[1:] if r[0] == logins[0][0]}
    assert mine["MUL-1"] == ("A;C", 1.5) and mine["LIK-1"] == ("2", 4)
    assert mine["KER-2"] == (None, 0) and mine["FIG-1"] == ("B", 0)
    assert len(answers) == 1 + 2 * 9


def test_potensi_only_session_has_no_jpm(db, clock):
    _, logins = make_open_session(db, clock, secret=SECRET, participants=1)
    attempt = take_test(db, clock, *logins[0], {"NUM-1": "B", "EMO-1": "A"})
    result = result_of(db, attempt)
    assert result.jpm is None and result.category == "" and result.detail["required"] == {}
    assert result.total_score == D(10) and result.potensi_band == "Rendah"


def test_engine_helpers():
    assert engine.strengths_and_development({"a": 0, "b": -1, "c": 2, "d": -2}) == \
        (["c", "a"], ["d", "b"])
    assert engine.combined_jpm(D("74.44"), D("83.33"), (40, 60)) == D("79.77")
    assert engine.mean_percent([(D(1), D(3)), (D(1), D(1))]) == D("66.67")
    assert engine.mean_percent([]) is None
    assert [engine.performance_from_score(D(v)) for v in (75.99, 76, 90.99, 91)] == \
        ["below", "as_expected", "as_expected", "above"]
    assert engine.performance_from_category("Masih Memenuhi Syarat", "placement") == \
        "as_expected"
    assert bank_doc()["bank"]["code"] == "UJI-POT"


def test_command_line_standards_rescore_export_and_kinerja(database, clock, tmp_path):
    from tests.integration.test_demo_and_cli import cact

    with database.transaction() as db:
        _, logins = build_session(db, clock)
        take_test(db, clock, *logins[0], ANSWERS_1)
        take_test(db, clock, *logins[1], {})
    url = database.url
    loaded = cact(url, "standards", "load-defaults")
    assert loaded.returncode == 0 and "99 default row(s) added" in loaded.stdout, loaded.stderr
    assert "0 default row(s)" in cact(url, "standards", "load-defaults").stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("job_key,competency,required_level\n"
                   "administrator,kerjasama,2\n"
                   "direktur,integritas,3\n"
                   "pengawas,kejujuran,9\n"
                   "administrator,kompetensi.kerjasama,2\n")
    refused = cact(url, "standards", "import", str(bad))
    assert refused.returncode == 1
    for where in ("row 3, column job_key (A)", "row 4, column competency (B)",
                  "row 4, column required_level (C)", "row 5, column competency (B)"):
        assert where in refused.stderr, (where, refused.stderr)
    # the message in the server's language (Indonesian), as for a roster's problems
    assert "row 2," not in refused.stderr and "sudah tercantum di baris 2" in refused.stderr
    good = tmp_path / "standar.csv"
    good.write_text("job_key;competency;required_level\nadministrator;kerjasama;1\n"
                    "fungsional:ahli muda;integritas;4\n")
    imported = cact(url, "standards", "import", str(good))
    assert imported.returncode == 0 and "0 added, 2 changed" in imported.stdout, imported.stderr

    rescored = cact(url, "results", "rescore", "s1", "--reason", "standar baru")
    assert rescored.returncode == 0, rescored.stderr
    # both rows are rewritten (the standards now come from the table), but only the
    # administrator's result reads differently
    assert "rescored: 2 result(s), 1 changed, 1 unchanged" in rescored.stdout
    assert "berubah / changed: jpm 1, combined_jpm 1, category 1" in rescored.stdout
    changed = [line for line in rescored.stdout.splitlines() if "-> " in line]
    assert len(changed) == 1
    assert "total 24.5 -> 24.5, JPM 83.33 -> 100" in changed[0]  # 5 / (3 + 1), capped
    again = cact(url, "results", "rescore", "S1")
    assert ("Sesi / session S1: sudah mutakhir / already up to date: 2 result(s) checked, "
            "none changed") in again.stdout  # reproduces the same numbers

    out = tmp_path / "hasil.csv"
    exported = cact(url, "results", "export", "S1", "--format", "csv", "--out", str(out))
    assert exported.returncode == 0 and "2 participant(s), 2 with a result" in exported.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(r["nip"], r["jpm"], r["category"]) for r in rows] == [
        (logins[0][0], "100", "Optimal"), (logins[1][0], "50", "Kurang Optimal")]
    xlsx = tmp_path / "hasil.xlsx"
    assert cact(url, "results", "export", "S1", "--format", "xlsx", "--out",
                str(xlsx)).returncode == 0
    assert xlsx.read_bytes()[:2] == b"PK"
    assert cact(url, "results", "export", "NOPE", "--out", str(xlsx)).returncode == 1

    kinerja = tmp_path / "kinerja.csv"
    kinerja.write_text(f"nip,period,rating\n{logins[0][0]},2025,Di atas ekspektasi\n"
                       f"{logins[1][0]},2025,70\n")
    rated = cact(url, "performance", "import", str(kinerja))
    assert rated.returncode == 0 and "2 added" in rated.stdout, rated.stderr
    assert "2 result(s) rescored" in rated.stdout
    bad_rating = tmp_path / "kinerja-salah.csv"
    bad_rating.write_text("nip,period,rating\n123,2025,luar biasa\n")
    refused = cact(url, "performance", "import", str(bad_rating))
    assert refused.returncode == 1
    assert "row 2, column nip (A)" in refused.stderr
    assert "row 2, column rating (C)" in refused.stderr
    with database.transaction(write=False) as db:
        boxes = dict(db.execute(select(Participant.nip, Result.nine_box)
                                .join(RosterEntry, RosterEntry.participant_id == Participant.id)
                                .join(Attempt, Attempt.roster_entry_id == RosterEntry.id)
                                .join(Result, Result.attempt_id == Attempt.id)).all())
        ratings = dict(db.execute(select(PerformanceRating.rating, PerformanceRating.score)
                                  ).all())
        actions = [e.action for e in db.scalars(select(audit.AuditEvent))]
    assert boxes == {logins[0][0]: 7, logins[1][0]: 1}  # above x medium; below x low
    assert ratings == {"above": None, "below": D(70)}
    for action in ("standards.load_defaults", "standards.import", "results.rescore",
                   "results.export", "performance.import"):
        assert action in actions, action


def _readings(db):
    """attempt id -> what each result is read by, straight from the tables: construct levels,
    total, potensi score and band, JPM, combined JPM, category, nine-box box."""
    db.expire_all()
    levels: dict[int, dict[str, int | None]] = {}
    for row in db.scalars(select(ConstructScore)):
        levels.setdefault(row.attempt_id, {})[row.construct] = row.level
    return {r.attempt_id: {"levels": levels.get(r.attempt_id), "total": r.total_score,
                           "potensi_score": r.detail["potensi_score"],
                           "potensi_band": r.potensi_band, "jpm": r.jpm,
                           "combined_jpm": r.detail["combined_jpm"], "category": r.category,
                           "nine_box": r.nine_box}
            for r in db.scalars(select(Result))}


def test_a_key_correction_reports_exactly_the_results_it_changed(database, clock):
    """NUM-1's key moves from B to A: who answered B loses 5 points (numerik level 2 -> 1), who
    answered A gains them, who left it blank reads the same. `cact bank correct-key` says
    what its rescore changed, its audit row has the same numbers, and a `cact results
    rescore` after it finds the session already up to date."""
    from tests.integration.test_demo_and_cli import cact

    answers = [ANSWERS_1, {"NUM-1": "A"}, {}, {"FIG-1": "A"}, {"NUM-1": "B", "KER-1": "A"}]
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=len(answers))
        for (nip, token), given in zip(logins, answers, strict=True):
            take_test(db, clock, nip, token, given)
    with database.transaction(write=False) as db:
        before = _readings(db)
    fixed = cact(database.url, "bank", "correct-key", "UJI-POT", "NUM-1", "--key", "A",
                 "--reason", "kunci tertukar")
    assert fixed.returncode == 0, fixed.stderr
    with database.transaction(write=False) as db:
        after = _readings(db)
        event = db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "results.rescore_key_correction")).one()
    # counted here, independently of the server's summary
    assert set(before) == set(after) and len(before) == 5
    changed = sorted(a for a in before if before[a] != after[a])
    fields = {}
    for name in before[changed[0]]:
        moved = sum(1 for a in before if before[a][name] != after[a][name])
        if moved:
            fields[name] = moved
    assert len(changed) == 3  # the two who answered B and the one who answered A
    assert fields["levels"] == 3 and fields["total"] == 3
    assert event.data["rescored"] == 5
    assert (event.data["changed"], event.data["unchanged"]) == (len(changed), 5 - len(changed))
    assert event.data["fields"] == fields
    assert [c["attempt"] for c in event.data["changes"]] == changed
    assert (f"rescored: 5 result(s), {len(changed)} changed, {5 - len(changed)} unchanged"
            in fixed.stdout)
    assert ("berubah / changed: " + ", ".join(f"{k} {v}" for k, v in fields.items())
            in fixed.stdout)

    again = cact(database.url, "results", "rescore", "S1", "--reason", "cek")
    assert again.returncode == 0, again.stderr
    assert ("Sesi / session S1: sudah mutakhir / already up to date: 5 result(s) checked, "
            "none changed") in again.stdout
    with database.transaction(write=False) as db:
        assert _readings(db) == after
        rescore = db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "results.rescore")).one()
    assert (rescore.data["rescored"], rescore.data["changed"], rescore.data["unchanged"],
            rescore.data["fields"], rescore.data["changes"]) == (5, 0, 5, {}, [])
