"""Item analysis of a bank version after a session: answers given through the delivery
services, then the service, the admin page (sorting, session filter, flags) and the CSV."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import event, select

from app.analysis.service import item_analysis
from app.bank.models import BankVersion, Item, ItemBank, ItemOption
from app.delivery import attempts, saving, timing
from app.delivery.models import AttemptItem
from app.sessions.service import session_by_code
from tests.conftest import staff_login
from tests.factories import make_open_session

SECRET = "s" * 40

# Per participant: the option labels chosen per item code (a list for the multiple item).
# NUM-1 (key B): everybody right -> p = 1.00 > .95, "too easy", and distractor A unused.
# FIG-1 (key A): two of three right -> p = .67.
# EMO-1 (weighted A=5, B=1), MUL-1 (A=2.5, B=2.5, C=-1), LIK-1 (reversed 1-5).
ANSWERS = [
    {"NUM-1": "B", "FIG-1": "A", "MUL-1": ["A", "B"], "EMO-1": "A", "LIK-1": "1"},
    {"NUM-1": "B", "FIG-1": "A", "MUL-1": ["A"], "EMO-1": "A", "LIK-1": "2"},
    {"NUM-1": "B", "FIG-1": "B", "MUL-1": ["C"], "EMO-1": "B", "LIK-1": "5"},
    # The fourth never hands in: an attempt still running is not analysed.
    {"NUM-1": "A", "FIG-1": "B", "MUL-1": None, "EMO-1": None, "LIK-1": None},
]


def _option_ids(db) -> dict[tuple[str, str], int]:
    return {(code, label): oid for code, label, oid in db.execute(
        select(Item.code, ItemOption.label, ItemOption.id)
        .join(Item, Item.id == ItemOption.item_id))}


def run_session(db, clock, *, code="S1", first=1, answers=ANSWERS, running=1) -> int:
    """Takers log in, answer through the delivery services and hand in (all but the last
    ``running``, who are still at work); returns the bank version id."""
    _, logins = make_open_session(db, clock, secret=SECRET, participants=len(answers),
                                  code=code, first=first)
    ids = _option_ids(db)
    codes = dict(db.execute(select(Item.id, Item.code)).all())
    for index, ((nip, token), chosen) in enumerate(zip(logins, answers, strict=True)):
        attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-3:]}",
                                 client_addr="10.0.0.1", secret=SECRET, now=clock.now()).attempt
        timing.start(db, attempt=attempt, now=clock.now())
        form = list(db.scalars(select(AttemptItem).where(AttemptItem.attempt_id == attempt.id)
                               .order_by(AttemptItem.position)))
        seq = 0
        for section in (0, 1):
            if section == 1:
                timing.next_section(db, attempt=attempt, now=clock.now())
            for entry in (e for e in form if e.section == section):
                item_code = codes[entry.item_id]
                picked = chosen[item_code]
                if picked is None:
                    continue
                response = ([ids[(item_code, label)] for label in picked]
                            if isinstance(picked, list) else ids[(item_code, picked)])
                seq += 1
                saving.save_answer(db, attempt=attempt, item_id=entry.item_id,
                                     response=response, seq=seq, flagged=False,
                                     workstation=f"PC-{nip[-3:]}", grace_s=15, now=clock.now())
        if index < len(answers) - running:
            timing.submit(db, attempt=attempt, reason="taker", actor="taker:test",
                            now=clock.now())
    db.flush()
    return db.scalar(select(BankVersion.id).join(ItemBank, ItemBank.id == BankVersion.bank_id)
                     .where(ItemBank.code == "UJI-POT"))


def by_code(result):
    return {s.code: s for s in result.analysis.items}


def test_service_scores_finished_attempts_with_few_queries(db, clock):
    version_id = run_session(db, clock)
    queries = []

    def listener(*args):
        queries.append(args[2])

    event.listen(db.get_bind(), "before_cursor_execute", listener)
    try:
        result = item_analysis(db, bank_version_id=version_id)
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", listener)
    # One per table, whatever the number of takers and items (results: which attempts are not
    # scoreable; construct_scores: the EAP estimates for the reliability of pooled forms).
    assert len(queries) <= 8
    assert result.attempts == 3 and result.sessions == ["S1"]
    items = by_code(result)
    assert items["NUM-1"].n == 3 and items["NUM-1"].p == pytest.approx(1.0)
    assert set(items["NUM-1"].flags) == {"too_easy", "unused_distractor"}
    assert {o.label: o.count for o in items["NUM-1"].options} == {"A": 0, "B": 3}
    assert items["FIG-1"].p == pytest.approx(2 / 3)
    assert items["EMO-1"].mean == pytest.approx((5 + 5 + 1) / 3)
    # MUL-1: A+B = 5, A = 2.5, C = -1 clamped to 0 -> mean 2.5 of 5.
    assert items["MUL-1"].p == pytest.approx(0.5)
    # LIK-1 is reverse keyed: "1" scores 5, "2" 4, "5" 1.
    assert items["LIK-1"].mean == pytest.approx(10 / 3)
    assert not any(o.distractor for o in items["LIK-1"].options)
    scales = {s.scale for s in result.analysis.scales}
    assert "potensi.numerik" in scales
    assert item_analysis(db, bank_version_id=version_id + 999) is None


def test_session_filter(db, clock):
    version_id = run_session(db, clock, code="S1")
    run_more = [{"NUM-1": "A", "FIG-1": "A", "MUL-1": None, "EMO-1": "A", "LIK-1": "3"}] * 2
    assert run_session(db, clock, code="S2", first=50, answers=run_more, running=0) == version_id
    everyone = item_analysis(db, bank_version_id=version_id)
    assert everyone.attempts == 5 and everyone.sessions == ["S1", "S2"]
    only_two = item_analysis(db, bank_version_id=version_id, session=session_by_code(db, "S2"))
    assert only_two.attempts == 2 and only_two.session_code == "S2"
    assert by_code(only_two)["NUM-1"].p == pytest.approx(0.0)
    assert "too_hard" in by_code(only_two)["NUM-1"].flags


@pytest.fixture
def committed(database, clock):
    with database.transaction() as db:
        return run_session(db, clock)


def test_admin_page_csv_and_access(client, make_user, committed):
    version_id = committed
    anonymous = client.get(f"/admin/analysis/{version_id}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert client.get(f"/admin/analysis/{version_id}.csv",
                      follow_redirects=False).status_code == 303

    staff_login(client, "pak.budi", make_user("pak.budi", role="proctor"))
    assert client.get(f"/admin/analysis/{version_id}").status_code == 403
    assert client.get(f"/admin/analysis/{version_id}.csv").status_code == 403
    client.cookies.clear()

    staff_login(client, "admin", make_user("admin"))
    page = client.get(f"/admin/analysis/{version_id}")
    assert page.status_code == 200
    html = page.text
    assert "Analisis butir" in html and "terlalu mudah" in html
    assert '<tr class="flagged" data-code="NUM-1">' in html
    assert '<tr data-code="FIG-1">' in html  # p = .67, r undefined: nothing to flag
    num_row = html.split('data-code="NUM-1">')[1].split("</tr>")[0]
    assert ">1,00<" in num_row and "pengecoh tidak dipilih" in num_row
    fig_row = html.split('data-code="FIG-1">')[1].split("</tr>")[0]
    assert ">0,67<" in fig_row
    # Sorting by difficulty puts the hardest (lowest p) first; by code is the default.
    by_p = client.get(f"/admin/analysis/{version_id}?sort=p").text
    assert by_p.index('data-code="MUL-1"') < by_p.index('data-code="NUM-1"')
    by_code = client.get(f"/admin/analysis/{version_id}?sort=nonsense").text
    assert by_code.index('data-code="EMO-1"') < by_code.index('data-code="FIG-1"') < \
        by_code.index('data-code="NUM-1"')
    # Session filter, unknown session, unknown version.
    assert "S1" in client.get(f"/admin/analysis/{version_id}?session=S1").text
    assert client.get(f"/admin/analysis/{version_id}?session=NOPE").status_code == 404
    assert client.get(f"/admin/analysis/{version_id + 99}").status_code == 404
    # English.
    client.cookies.set("cact_lang", "en")
    english = client.get(f"/admin/analysis/{version_id}").text
    assert "Item analysis" in english and "too easy" in english
    # The bank version page links here.
    items_page = client.get("/admin/banks/UJI-POT/v/1").text
    assert f'href="/admin/analysis/{version_id}"' in items_page

    exported = client.get(f"/admin/analysis/{version_id}.csv?session=S1")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "analisis-UJI-POT-v1-S1.csv" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    table = {row["item_code"]: row for row in rows}
    assert set(table) == {"NUM-1", "FIG-1", "EMO-1", "MUL-1", "LIK-1"}
    assert table["NUM-1"]["p"] == "1.000" and table["NUM-1"]["n"] == "3"
    assert table["NUM-1"]["flags"] == "too_easy;unused_distractor"
    assert table["NUM-1"]["options"] == "A=0;B=3"
    assert table["FIG-1"]["p"] == "0.667" and table["FIG-1"]["flags"] == ""


def test_analysis_page_satisfies_the_content_security_policy(client, make_user, committed):
    from tests.integration.test_web import csp_problems

    staff_login(client, "admin", make_user("admin"))
    html = client.get(f"/admin/analysis/{committed}?sort=r").text
    assert csp_problems(html) == []


def test_page_of_a_version_nobody_has_taken(client, make_user, database, clock):
    from tests.factories import bank_zip, run_import

    with database.transaction() as db:
        run_import(db, clock, "uji.zip", bank_zip())
        version_id = db.scalar(select(BankVersion.id))
    staff_login(client, "admin", make_user("admin"))
    page = client.get(f"/admin/analysis/{version_id}?sort=r")
    assert page.status_code == 200 and "0 tes yang sudah selesai" in page.text
    assert 'class="flagged"' not in page.text
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/admin/analysis/{version_id}.csv").content.decode("utf-8-sig"))))
    assert {r["n"] for r in rows} == {"0"} and {r["p"] for r in rows} == {""}
