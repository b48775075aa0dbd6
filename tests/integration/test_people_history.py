"""A person across time: one civil servant tested a year apart (promoted in between, with a
not-scoreable attempt in the middle): the history lists every test with the job they had at
the time while the person shows today's job; the trend per competency has the levels and
directions computed by hand; search by NIP prefix and name; the pages are the admin's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth.security import decrypt_token
from app.programmes.people import find_people, person_history
from app.programmes.service import attach_session, create_programme
from app.reports.export import validity_reason
from app.sessions.models import Participant, RosterEntry, TestSession
from app.sessions.roster import RosterRow, import_roster
from tests.factories import make_open_session
from tests.integration.test_scoring_service import BLUEPRINT, SECRET, build_session, take_test

YEAR = 365 * 86400
NIP = "198001012005011001"
NAME = "Siti Rahmawati"
BEFORE = RosterRow(nip=NIP, name=NAME, job_group="pengawas", position="Kepala Subbagian Umum",
                   unit="Dinas Pendidikan")
AFTER = RosterRow(nip=NIP, name=NAME, job_group="administrator",
                  position="Kepala Bagian Umum", unit="Sekretariat Daerah")
CUTS = (3, 5, 7, 9)  # the kompetensi bank's cut scores (raw 0-10: two items weighted 5/3/1)
WEIGHT = {"A": 5, "B": 3, "C": 1}
FIRST = {"INT-1": "C", "INT-2": "C", "KER-1": "A", "KER-2": "A"}
SECOND = {"INT-1": "A", "INT-2": "A", "KER-1": "C", "KER-2": "C"}


def level(answers: dict[str, str], prefix: str) -> int:
    """The level of one competency from the answers, by the cut scores (by hand)."""
    raw = sum(WEIGHT[a] for code, a in answers.items() if code.startswith(prefix))
    return 1 + sum(raw >= cut for cut in CUTS)


def token_of(db, session: TestSession, nip: str) -> str:
    return decrypt_token(SECRET, db.scalars(
        select(RosterEntry.token_encrypted).join(Participant).where(
            RosterEntry.session_id == session.id, Participant.nip == nip)).one())


@pytest.fixture
def history(database, clock):
    """2025 (Y1, no programme): a pengawas, some answers right. Two months later (Y1B): blank
    hand-in with the answered-share rule on (not scoreable). 2026 (Y2, programme PEMETAAN-26):
    promoted to administrator by the new roster, every integritas answer right."""
    with database.transaction() as db:
        first, _ = build_session(db, clock, participants=2, code="Y1")
        import_roster(db, session=first, rows=[BEFORE], secret=SECRET, actor="test",
                      now=clock.now())
        clock.advance(3600)
        take_test(db, clock, NIP, token_of(db, first, NIP), FIRST)

        clock.advance(60 * 86400)
        blank, _ = make_open_session(db, clock, secret=SECRET, blueprint_yaml=BLUEPRINT,
                                     participants=1, code="Y1B", first=20,
                                     validity={"rapid_threshold_s": 0})
        import_roster(db, session=blank, rows=[BEFORE], secret=SECRET, actor="test",
                      now=clock.now())
        take_test(db, clock, NIP, token_of(db, blank, NIP), {})

        clock.advance(YEAR - 60 * 86400)
        second, _ = make_open_session(db, clock, secret=SECRET, blueprint_yaml=BLUEPRINT,
                                      participants=1, code="Y2", first=30)
        second.room = "Lab 2"
        programme = create_programme(db, code="PEMETAAN-26", name="Pemetaan 2026",
                                     purpose="mapping", actor="admin", now=clock.now())
        attach_session(db, programme=programme, session=second, actor="admin", now=clock.now())
        import_roster(db, session=second, rows=[AFTER], secret=SECRET, actor="test",
                      now=clock.now())
        clock.advance(3600)
        take_test(db, clock, NIP, token_of(db, second, NIP), SECOND)
    return NIP


def test_history_keeps_the_job_at_each_test_and_the_trend(history, database, clock):
    with database.transaction(write=False) as db:
        found = person_history(db, history)
        assert found is not None
        # Today's job is the newest roster's.
        assert (found.job.job_group, found.job.position, found.job.unit) == (
            "administrator", "Kepala Bagian Umum", "Sekretariat Daerah")
        assert [e.session_code for e in found.entries] == ["Y1", "Y1B", "Y2"]
        assert [e.status for e in found.entries] == ["scored", "not_scoreable", "scored"]
        assert [(e.job.job_group, e.job.position, e.job.unit) for e in found.entries] == [
            ("pengawas", "Kepala Subbagian Umum", "Dinas Pendidikan"),
            ("pengawas", "Kepala Subbagian Umum", "Dinas Pendidikan"),
            ("administrator", "Kepala Bagian Umum", "Sekretariat Daerah")]
        dates = [e.date for e in found.entries]
        assert dates == sorted(dates) and dates[2] - dates[0] >= timedelta(days=365)
        assert [e.programme_code for e in found.entries] == ["", "", "PEMETAAN-26"]
        assert found.entries[2].session_room == "Lab 2"
        one, _, two = found.entries
        assert one.jpm is not None and two.jpm is not None and one.category and two.category

        # The trend: only the two trusted tests, levels by hand, directions from the previous.
        assert [c.session_code for c in found.columns] == ["Y1", "Y2"]
        trend = {t.competency: t for t in found.trends}
        assert set(trend) == {"integritas", "kerjasama"}
        integritas = [level(FIRST, "INT"), level(SECOND, "INT")]
        kerjasama = [level(FIRST, "KER"), level(SECOND, "KER")]
        assert integritas == [1, 5] and kerjasama == [5, 1]
        assert trend["integritas"].levels == integritas
        assert trend["integritas"].changes == ["", "up"]
        assert trend["kerjasama"].levels == kerjasama
        assert trend["kerjasama"].changes == ["", "down"]
        assert one.achieved == {"integritas": 1, "kerjasama": 5}
        assert two.achieved == {"integritas": 5, "kerjasama": 1}


def test_a_not_scoreable_attempt_shows_its_reason_and_no_jpm(history, database, admin):
    with database.transaction(write=False) as db:
        blank = person_history(db, history).entries[1]
    assert blank.status == "not_scoreable" and not blank.trusted
    assert blank.jpm is None and blank.category == "" and blank.potensi_band == ""
    assert blank.nine_box is None
    assert [r["rule"] for r in blank.reasons] == ["few_answered", "few_answered"]
    page = admin.get(f"/admin/people/{history}")
    assert page.status_code == 200
    row = page.text.split('<tr data-session="Y1B"', 1)[1].split("</tr>", 1)[0]
    assert "Tidak dapat dinilai" in row
    for reason in blank.reasons:
        assert validity_reason(reason, "id") in row
    assert row.count("—") >= 4  # no JPM, category, band, box


def test_the_page_shows_the_job_at_the_time_and_the_trend(history, admin):
    page = admin.get(f"/admin/people/{history}")
    assert page.status_code == 200
    text = page.text
    assert NAME in text and NIP in text
    current = text.split('data-testid="current-job"', 1)[1].split("</p>", 1)[0]
    assert "Administrator · Kepala Bagian Umum · Sekretariat Daerah" in current
    assert text.count('data-testid="job-then">Pengawas · Kepala Subbagian Umum') == 2
    assert text.count('data-testid="job-then">Administrator · Kepala Bagian Umum') == 1
    trend = text.split('data-testid="person-trend"', 1)[1].split("</table>", 1)[0]
    assert trend.count('data-testid="trend-column"') == 2
    assert trend.index("Pengawas · Kepala Subbagian Umum") < trend.index(
        "Administrator · Kepala Bagian Umum")
    integritas = trend.split('data-competency="integritas"', 1)[1].split("</tr>", 1)[0]
    assert "<strong>1</strong>" in integritas and "<strong>5</strong>" in integritas
    assert 'data-change="up"' in integritas and "↑" in integritas
    kerjasama = trend.split('data-competency="kerjasama"', 1)[1].split("</tr>", 1)[0]
    assert 'data-change="down"' in kerjasama and "↓" in kerjasama
    programme_page = admin.get(f"/admin/programmes/PEMETAAN-26/people/{history}")
    assert f'href="/admin/people/{history}"' in programme_page.text
    admin.cookies.set("cact_lang", "en")
    english = admin.get(f"/admin/people/{history}")
    assert english.status_code == 200
    assert "Trend per competency" in english.text and "Job at the time" in english.text


def test_search_by_nip_prefix_and_by_name(history, database, admin):
    with database.transaction(write=False) as db:
        assert [p.nip for p in find_people(db, "19800101 2005011001")] == [NIP]
        by_prefix = [p.nip for p in find_people(db, "1980010120050110")]
        assert NIP in by_prefix and len(by_prefix) == 4  # her, Y1's other, Y1B's and Y2's
        assert [p.nip for p in find_people(db, "rahma")] == [NIP]
        assert [p.name for p in find_people(db, "peserta")] == sorted(
            p.name for p in find_people(db, "peserta"))
        assert find_people(db, "  ") == [] and find_people(db, "100%") == []
    page = admin.get("/admin/people", params={"q": "RAHMA"})
    assert page.status_code == 200
    assert page.text.count("<tr data-nip=") == 1 and f'href="/admin/people/{NIP}"' in page.text
    assert admin.get("/admin/people").status_code == 200


def test_a_proctor_is_refused(history, proctor):
    for url in ("/admin/people?q=1980", f"/admin/people/{history}"):
        response = proctor.get(url, follow_redirects=False)
        assert response.status_code == 403, (url, response.status_code)


def test_an_unknown_nip_is_not_found(history, admin):
    assert admin.get("/admin/people/199901012020011999").status_code == 404
