"""Key positions and their candidates: a programme of seven people whose levels are known, read
against a key position's own required levels. Every JPM, gap, rank and threshold mark below is
computed by hand in the comments, not by the code under test."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from sqlalchemy import select

from app import audit
from app.audit import AuditEvent
from app.delivery.models import Attempt
from app.programmes.candidates import (
    NO_RESULT,
    NOT_SCOREABLE,
    candidate_pool,
    candidates,
    create_position,
    position_by_key,
    set_required,
)
from app.programmes.service import (
    ProgrammeError,
    attach_session,
    create_programme,
    programme_by_code,
)
from app.scoring.models import Result
from app.sessions.models import Participant, RosterEntry
from tests.factories import make_open_session, sit
from tests.integration.test_demo_and_cli import cact

SECRET = "k" * 40
CODE, KEY = "PENGISIAN-UJI", "KADIS-DIKBUD"


def nip(n: int) -> str:
    return f"198001012005011{n:03d}"


# The position's levels for the first ranking (sum of required levels: 4 + 3 + 3 + 4 = 14).
REQUIRED = {"integritas": 4, "kerjasama": 3, "komunikasi": 3, "pengambilan_keputusan": 4}
# Levels achieved (integritas, kerjasama, komunikasi, pengambilan_keputusan), with the band and
# box stored on each result. Person 1 also has orientasi_hasil, which the position does not
# require: it is left out of the JPM.
PEOPLE = {
    1: ({"integritas": 4, "kerjasama": 3, "komunikasi": 3, "pengambilan_keputusan": 3,
         "orientasi_hasil": 1}, "Tinggi", 8),
    2: ({"integritas": 5, "kerjasama": 4, "komunikasi": 2, "pengambilan_keputusan": 4},
        "Menengah", 5),
    3: ({"integritas": 3, "kerjasama": 3, "komunikasi": 2, "pengambilan_keputusan": 2},
        "Rendah", 2),
    4: ({"integritas": 5, "kerjasama": 3, "komunikasi": 2, "pengambilan_keputusan": 3},
        "Menengah", 7),
    5: ({"integritas": 4, "kerjasama": 4, "komunikasi": 2, "pengambilan_keputusan": 3},
        "Tinggi", 9),
}
NOT_SCOREABLE_NIP, ABSENT_NIP = nip(6), nip(7)  # 6 answers nothing; 7 never logs in

# Against REQUIRED (sum 14), the programme's purpose is position (placement): Memenuhi Syarat
# from 80, Masih Memenuhi Syarat 68 to < 80, Kurang Memenuhi Syarat below 68; the threshold is
# the top category's 80.
#   P1: 4+3+3+3 = 13; 13/14 x 100 = 92.857... -> 92.86; gaps 0, 0, 0, -1 (1 negative); MS, meets
#   P2: 5+4+2+4 = 15; 15/14 x 100 = 107.14... capped -> 100.00; gaps +1, +1, -1, 0 (1); MS, meets
#   P3: 3+3+2+2 = 10; 10/14 x 100 = 71.428... -> 71.43; gaps -1, 0, -1, -2 (3); MMS, does not
#   P4: 5+3+2+3 = 13 -> 92.86; gaps +1, 0, -1, -1 (2); MS, meets
#   P5: 4+4+2+3 = 13 -> 92.86; gaps 0, +1, -1, -1 (2); MS, meets
# Ranking: P2 (100); then P1, P4, P5 at 92.86: P1 has 1 negative gap, P4 and P5 2 each, so
# NIP order (…004 before …005); last P3 (71.43).
FIRST_RANKING = [
    # (person, JPM, gaps in the order integritas, kerjasama, komunikasi, pengambilan_keputusan,
    #  category, meets)
    (2, Decimal("100.00"), (1, 1, -1, 0), "Memenuhi Syarat", True),
    (1, Decimal("92.86"), (0, 0, 0, -1), "Memenuhi Syarat", True),
    (4, Decimal("92.86"), (1, 0, -1, -1), "Memenuhi Syarat", True),
    (5, Decimal("92.86"), (0, 1, -1, -1), "Memenuhi Syarat", True),
    (3, Decimal("71.43"), (-1, 0, -1, -2), "Masih Memenuhi Syarat", False),
]
# The position's own levels changed to komunikasi 3, pengambilan_keputusan 3 (sum 6):
#   P1: 3+3 = 6; 6/6 = 100.00; gaps 0, 0 (0 negative); meets
#   P2: 2+4 = 6 -> 100.00; gaps -1, +1 (1); meets
#   P3: 2+2 = 4; 4/6 x 100 = 66.666... -> 66.67; gaps -1, -1 (2); KMS (< 68), does not
#   P4: 2+3 = 5; 5/6 x 100 = 83.333... -> 83.33; gaps -1, 0 (1); meets
#   P5: 2+3 = 5 -> 83.33; gaps -1, 0 (1); meets
# Ranking: P1 (100, no negative gap) before P2 (100, one), then P4, P5 (NIP order), P3.
CHANGED = {"komunikasi": 3, "pengambilan_keputusan": 3}
SECOND_RANKING = [
    (1, Decimal("100.00"), (0, 0), "Memenuhi Syarat", True),
    (2, Decimal("100.00"), (-1, 1), "Memenuhi Syarat", True),
    (4, Decimal("83.33"), (-1, 0), "Memenuhi Syarat", True),
    (5, Decimal("83.33"), (-1, 0), "Memenuhi Syarat", True),
    (3, Decimal("66.67"), (-1, -1), "Kurang Memenuhi Syarat", False),
]


@pytest.fixture
def programme(database, clock):
    """Seven people on one session of a programme for filling a position: five scored through
    the delivery path, whose stored results then get the competency levels above (the test's
    blueprint measures potensi only), one who answers nothing (not scoreable) and one absent."""
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=SECRET, participants=7,
                                            code="KP1", validity={"rapid_threshold_s": 0})
        made = create_programme(db, code=CODE, name="Pengisian uji", purpose="position",
                                actor="admin", now=clock.now())
        attach_session(db, programme=made, session=session, actor="admin", now=clock.now())
        for person, token in logins:
            if person != ABSENT_NIP:
                sit(db, clock, person, token, secret=SECRET, answer=person != NOT_SCOREABLE_NIP)
        for n, (achieved, band, box) in PEOPLE.items():
            result = db.scalars(select(Result).join(Attempt, Attempt.id == Result.attempt_id)
                                .join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
                                .join(Participant, Participant.id == RosterEntry.participant_id)
                                .where(Participant.nip == nip(n))).one()
            result.detail = {**result.detail, "achieved": achieved}
            result.potensi_band, result.nine_box = band, box
            person = db.scalars(select(Participant).where(Participant.nip == nip(n))).one()
            person.position, person.unit = f"Kepala Bidang {n}", "Dinas Pendidikan"
        position = create_position(db, key=KEY.lower(), name="Kepala Dinas Pendidikan",
                                   unit="Dinas Pendidikan dan Kebudayaan",
                                   job_key="administrator", actor="admin", now=clock.now())
        # Copied from the administrator's standard: level 3 for each of the nine.
        assert position.key == KEY and len(position.required) == 9
        assert set(position.required.values()) == {3}
        assert set_required(db, position=position, required=REQUIRED, actor="admin",
                            now=clock.now())
    return CODE


def check(rows, expected, competencies):
    assert [(r.rank, r.nip) for r in rows] == [(i, nip(p)) for i, (p, *_) in
                                               enumerate(expected, start=1)]
    for row, (person, jpm, gaps, category, meets) in zip(rows, expected, strict=True):
        assert row.jpm == jpm, person
        assert tuple(row.gaps[c] for c in competencies) == gaps, person
        assert (row.category, row.meets) == (category, meets), person
        assert row.negative_gaps == sum(1 for g in gaps if g < 0)


def test_ranking_gaps_and_thresholds_against_the_position(programme, database, clock):
    with database.transaction() as db:
        chosen, position = programme_by_code(db, programme), position_by_key(db, KEY)
        pool = candidate_pool(db, programme=chosen, position=position)
        check(pool.ranked, FIRST_RANKING, ["integritas", "kerjasama", "komunikasi",
                                           "pengambilan_keputusan"])
        assert (pool.threshold, pool.threshold_category) == (Decimal(80), "Memenuhi Syarat")
        assert pool.meeting == 4
        first = pool.ranked[1]  # P1: orientasi_hasil is not required, so not in the gaps
        assert "orientasi_hasil" not in first.gaps
        assert (first.person.potensi_band, first.person.nine_box) == ("Tinggi", 8)
        assert first.current_job_key == "pengawas"  # read against the position, not this
        # Listed apart, never ranked: the one who answered nothing and the absent one.
        assert pool.apart == {NOT_SCOREABLE: [NOT_SCOREABLE_NIP], NO_RESULT: [ABSENT_NIP]}
        assert pool.apart_count == 2

        assert not set_required(db, position=position, required=dict(REQUIRED), actor="admin",
                                now=clock.now())  # the same levels: nothing recorded
        assert set_required(db, position=position, required=CHANGED, actor="admin",
                            now=clock.now())
        check(candidates(db, programme=chosen, position=position), SECOND_RANKING,
              ["komunikasi", "pengambilan_keputusan"])
        events = db.scalars(select(AuditEvent).where(AuditEvent.action.like("position.%"))
                            .order_by(AuditEvent.id)).all()
        assert [e.action for e in events] == ["position.create", "position.required",
                                              "position.required"]
        assert events[-1].data == {"old": REQUIRED, "new": CHANGED}
        assert audit.verify(db).ok


def test_refusals(programme, database, clock):
    with database.transaction() as db:
        position = position_by_key(db, KEY)
        for kwargs, key in [
            ({"key": KEY, "job_key": "administrator"}, "position_key_taken"),
            ({"key": "X", "job_key": "administrator"}, "position_key_invalid"),
            ({"key": "KABAG-UMUM", "job_key": "direktur"}, "position_job_key"),
        ]:
            with pytest.raises(ProgrammeError) as refused:
                create_position(db, name="Kepala", actor="admin", now=clock.now(), **kwargs)
            assert refused.value.key == key
            assert refused.value.text("id") != refused.value.text("en")
        for required, key in [({"integritas": 6}, "position_level"),
                              ({"integritas": 0}, "position_level"),
                              ({"menari": 3}, "position_competency"),
                              ({}, "position_required_empty")]:
            with pytest.raises(ProgrammeError) as refused:
                set_required(db, position=position, required=required, actor="admin",
                             now=clock.now())
            assert refused.value.key == key
        assert position.required == REQUIRED


def test_cli_writes_the_ranking(programme, database, tmp_path):
    out = tmp_path / "kandidat.csv"
    done = cact(database.url, "talent", "candidates", programme, "--position", KEY.lower(),
                "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "5 candidate(s)" in done.stdout and "4 meet the threshold" in done.stdout
    assert f"not_scoreable): 1: {NOT_SCOREABLE_NIP}" in done.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(r["rank"], r["nip"], r["jpm_position"], r["meets_threshold"]) for r in rows] == [
        ("1", nip(2), "100", "yes"), ("2", nip(1), "92.86", "yes"),
        ("3", nip(4), "92.86", "yes"), ("4", nip(5), "92.86", "yes"),
        ("5", nip(3), "71.43", "no")]
    assert (rows[4]["gap_integritas"], rows[4]["gap_pengambilan_keputusan"]) == ("-1", "-2")
    assert rows[0]["category"] == "Memenuhi Syarat" and rows[1]["nine_box"] == "8"
    bad = cact(database.url, "talent", "candidates", programme, "--position", "NOPE",
               "--out", str(out))
    assert bad.returncode == 1 and "No key position" in bad.stderr + bad.stdout
    made = cact(database.url, "talent", "position-create", "sekda", "--name",
                "Sekretaris Daerah", "--unit", "Setda", "--job-key", "fungsional:Ahli Utama")
    assert made.returncode == 0, made.stderr
    assert "SEKDA created" in made.stdout and "integritas 5" in made.stdout
    taken = cact(database.url, "talent", "position-create", "SEKDA", "--name", "x",
                 "--job-key", "administrator")
    assert taken.returncode == 1 and "taken" in taken.stderr + taken.stdout
    listed = cact(database.url, "talent", "positions")
    assert f"{KEY}\tadministrator\tKepala Dinas Pendidikan" in listed.stdout
    assert "SEKDA\tfungsional:Ahli Utama" in listed.stdout
    with database.transaction(write=False) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent))]
    assert actions.count("programme.export_candidates") == 1
    assert actions.count("position.create") == 2


def test_pages_for_an_admin(programme, admin, database):
    listed = admin.get("/admin/positions")
    assert listed.status_code == 200 and f'data-key="{KEY}"' in listed.text
    token = listed.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    refused = admin.post("/admin/positions", data={"csrf_token": token, "key": KEY,
                                                   "name": "Lagi", "job_key": "pengawas"})
    assert refused.status_code == 422 and "sudah dipakai" in refused.text
    made = admin.post("/admin/positions", data={"csrf_token": token, "key": "kabid-sd",
                                                "name": "Kepala Bidang SD", "unit": "Dinas",
                                                "job_key": "pengawas"}, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/admin/positions/KABID-SD"

    unknown = admin.get("/admin/positions/NOPE")  # back to the list, which says so
    assert unknown.status_code == 200 and "Tidak ada posisi kunci NOPE" in unknown.text
    page = admin.get(f"/admin/positions/{KEY}")
    assert page.status_code == 200 and 'name="level_integritas"' in page.text
    bad = admin.post(f"/admin/positions/{KEY}", data={"csrf_token": token,
                                                      "level_integritas": "7"})
    assert bad.status_code == 422 and "tidak sah" in bad.text
    saved = admin.post(f"/admin/positions/{KEY}", follow_redirects=False, data={
        "csrf_token": token, **{f"level_{c}": str(v) for c, v in CHANGED.items()},
        "level_integritas": ""})
    assert saved.status_code == 303

    ranking = admin.get(f"/admin/programmes/{programme}/candidates?position={KEY}")
    assert ranking.status_code == 200
    order = [part.split('"', 1)[0] for part in ranking.text.split('<tr data-nip="')[1:]]
    assert order == [nip(p) for p, *_ in SECOND_RANKING]
    assert "4 memenuhi ambang posisi (Memenuhi Syarat, JPM minimal 80)" in ranking.text
    assert 'data-testid="candidates-apart"' in ranking.text and NOT_SCOREABLE_NIP in ranking.text
    assert "66,67" in ranking.text  # JPM with the Indonesian decimal comma
    assert admin.get(f"/admin/programmes/{programme}/candidates").status_code == 200
    assert admin.get(f"/admin/programmes/{programme}/candidates?position=NOPE"
                     ).status_code == 404
    sheet = admin.get(f"/admin/programmes/{programme}/candidates.csv?position={KEY}")
    assert sheet.status_code == 200
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert [r["nip"] for r in rows] == [nip(p) for p, *_ in SECOND_RANKING]
    link = admin.get(f"/admin/programmes/{programme}")
    assert f'href="/admin/programmes/{programme}/candidates"' in link.text
    with database.transaction(write=False) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent))]
    assert "programme.export_candidates" in actions and actions.count("position.create") == 2


def test_pages_refuse_a_proctor(programme, proctor):
    for url in ("/admin/positions", f"/admin/positions/{KEY}",
                f"/admin/programmes/{programme}/candidates?position={KEY}",
                f"/admin/programmes/{programme}/candidates.csv?position={KEY}"):
        assert proctor.get(url, follow_redirects=False).status_code == 403, url
