"""The talent map of a programme over two sessions: it places only the people whose attempt
that counts is scoreable and who have kinerja (imported at programme level), lists the others
apart with the reason (the zero-answer attempt as not scoreable, even with kinerja), filters by
unit and job group, and the page, the XLSX, the PDF and the CLI agree; a kinerja file with a NIP
outside the programme changes nothing; a proctor is refused."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select

from app import audit
from app.audit import AuditEvent
from app.bank.parsed import ImportFailed
from app.delivery.models import Attempt
from app.programmes.service import attach_session, create_programme, programme_by_code
from app.programmes.talent_map import (
    export_map,
    import_programme_kinerja,
    talent_map,
    to_pdf,
    to_xlsx,
)
from app.scoring.engine import NINE_BOX, POTENTIAL_OF_BAND
from app.scoring.models import PerformanceRating, Result
from app.sessions.models import JobGroup, Participant, RosterEntry
from tests.factories import make_open_session, sit
from tests.integration.test_demo_and_cli import cact

SECRET = "s" * 40
CODE = "PETA-UJI"
FIRST, SECOND = 12, 8  # people in day 1 and day 2
ZERO = 1  # answers nothing on day 1: not scoreable
ABSENT = 20  # on the day-2 roster, never sits
RATINGS = ("below", "as_expected", "above")


def nip(n: int) -> str:
    return f"198001012005011{n:03d}"


def unit_of(n: int) -> str:
    return "Dinas Pendidikan" if n % 2 else "Dinas Kesehatan"


def group_of(n: int) -> str:
    return "administrator" if n % 3 == 0 else "pengawas"


# Kinerja for everybody but 5, 6 and 15 (and the absentee); the zero-answer person has one too.
RATED = {n: RATINGS[n % 3] for n in range(1, FIRST + SECOND + 1) if n not in (5, 6, 15, ABSENT)}


def kinerja_csv(rated: dict[int, str], extra: str = "") -> bytes:
    lines = ["nip,period,rating"] + [f"{nip(n)},2025,{r}" for n, r in rated.items()]
    return ("\n".join(lines) + "\n" + extra).encode()


@pytest.fixture
def programme(database, clock):
    with database.transaction() as db:
        day1, first = make_open_session(db, clock, secret=SECRET, participants=FIRST,
                                        code="PETA1", validity={"rapid_threshold_s": 0})
        clock.advance(86400)
        day2, second = make_open_session(db, clock, secret=SECRET, participants=SECOND,
                                         code="PETA2", first=FIRST + 1,
                                         validity={"rapid_threshold_s": 0})
        for n in range(1, FIRST + SECOND + 1):
            person = db.scalars(select(Participant).where(Participant.nip == nip(n))).one()
            person.unit, person.job_group = unit_of(n), JobGroup(group_of(n))
        made = create_programme(db, code=CODE, name="Pemetaan Talenta Uji", purpose="mapping",
                                agency="Pemerintah Kota Uji", actor="admin", now=clock.now())
        for session in (day1, day2):
            attach_session(db, programme=made, session=session, actor="admin", now=clock.now())
        for who, token in first + second:
            if who != nip(ABSENT):
                sit(db, clock, who, token, secret=SECRET, answer=who != nip(ZERO))
    return CODE


def expected_boxes(db, rated: dict[int, str]) -> dict[int, int]:
    """{person: box} from the stored potensi band of each person's only attempt and the
    rating given, for the scoreable people with kinerja."""
    bands = dict(db.execute(
        select(Participant.nip, Result.potensi_band)
        .join(RosterEntry, RosterEntry.participant_id == Participant.id)
        .join(Attempt, Attempt.roster_entry_id == RosterEntry.id)
        .join(Result, Result.attempt_id == Attempt.id)).all())
    return {n: NINE_BOX[(rating, POTENTIAL_OF_BAND[bands[nip(n)]])]
            for n, rating in rated.items() if n != ZERO}


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (842, 595)  # A4 landscape
    return reader.pages[0].extract_text()


def the_map_places_scoreable_people_with_kinerja(database, clock):
    with database.transaction() as db:
        chosen = programme_by_code(db, CODE)
        before = talent_map(db, chosen)
        assert len(before.people) == FIRST + SECOND and before.placed == 0
        assert {n: len(v) for n, v in before.unplaced.items()} == {
            "not_scoreable": 1, "retake": 0, "no_kinerja": FIRST + SECOND - 2, "no_result": 1}
        done = import_programme_kinerja(db, programme=chosen, data=kinerja_csv(RATED),
                                        source="kinerja.csv", actor="admin", now=clock.now())
        assert (done.people, done.counts.added) == (len(RATED), len(RATED))
        assert done.rescored >= len(RATED) - 1
    with database.transaction(write=False) as db:
        chosen = programme_by_code(db, CODE)
        want = expected_boxes(db, RATED)
        tmap = talent_map(db, chosen)
        assert tmap.placed == len(want) == FIRST + SECOND - 1 - 1 - 3  # zero, absent, 3 unrated
        assert tmap.counts == {box: Counter(want.values())[box] for box in range(1, 10)}
        assert {p.nip: p.box for ps in tmap.boxes.values() for p in ps} == {
            nip(n): box for n, box in want.items()}
        unplaced = {reason: [p.nip for p in people] for reason, people in tmap.unplaced.items()}
        # The zero-answer attempt has kinerja, yet stays off the map as not scoreable.
        assert unplaced == {"not_scoreable": [nip(ZERO)], "retake": [],
                            "no_kinerja": [nip(15), nip(5), nip(6)],  # by name: Peserta 15 ...
                            "no_result": [nip(ABSENT)]}
        for people in tmap.boxes.values():
            assert [p.name.casefold() for p in people] == sorted(p.name.casefold()
                                                                 for p in people)

        unit = talent_map(db, chosen, unit="Dinas Kesehatan")
        even = {n: b for n, b in want.items() if unit_of(n) == "Dinas Kesehatan"}
        assert {p.nip for p in unit.people} == {nip(n) for n in range(2, 21, 2)}
        assert unit.counts == {box: Counter(even.values())[box] for box in range(1, 10)}
        assert [p.nip for p in unit.unplaced["no_kinerja"]] == [nip(6)]
        both = talent_map(db, chosen, unit="Dinas Pendidikan", job_group="administrator")
        odd_admins = {n for n in range(1, 21) if n % 2 and n % 3 == 0}  # 3, 9, 15
        assert {p.nip for p in both.people} == {nip(n) for n in odd_admins}
        assert both.placed == len(odd_admins & set(want))
        assert both.filter_text("id") == ("Unit kerja: Dinas Pendidikan; "
                                          "Kelompok jabatan: administrator")

        book = load_workbook(io.BytesIO(to_xlsx(tmap)))
        people, summary = book.worksheets
        rows = {r[0]: r for r in people.iter_rows(min_row=2, values_only=True)}
        assert len(rows) == FIRST + SECOND
        assert {k: r[6] for k, r in rows.items() if r[6] is not None} == {
            nip(n): box for n, box in want.items()}
        assert rows[nip(ZERO)][5] == "not_scoreable" and rows[nip(ZERO)][6] is None
        assert rows[nip(ZERO)][9].startswith("Tidak dapat dinilai")
        assert all(r[7] and r[8] for r in rows.values() if r[6] is not None)
        counts = {r[0]: r[3] for r in summary.iter_rows(values_only=True)
                  if isinstance(r[0], int)}
        assert counts == {box: Counter(want.values())[box] for box in range(1, 10)}
        totals = {r[0]: r[3] for r in summary.iter_rows(values_only=True) if r[0] in (
            "not_scoreable", "no_kinerja", "no_result", "placed", "total")}
        assert totals == {"not_scoreable": 1, "no_kinerja": 3, "no_result": 1,
                          "placed": len(want), "total": FIRST + SECOND}

        text = pdf_text(to_pdf(tmap, printed=clock.now()))
        assert "Peta Talenta Program Asesmen" in text and CODE in text
        assert f"{len(want)} dari {FIRST + SECOND} pegawai" in text
        for box, count in Counter(want.values()).items():
            assert f"Kotak {box}" in text and f"{count} orang" in text
        assert "Tidak dapat dinilai (menunggu keputusan admin): 1" in text
        assert "Peserta 1\n" not in text + "\n"  # the zero-answer person is in no box
        filtered = pdf_text(to_pdf(unit, printed=clock.now(), lang="en"))
        assert "Unit: Dinas Kesehatan" in filtered and "Talent Map" in filtered


def a_crowded_box_is_cut_with_more(database, clock):
    with database.transaction(write=False) as db:
        tmap = talent_map(db, programme_by_code(db, CODE))
        crowded = tmap.people[0]
        many = [type(crowded)(f"1990{n:014d}", f"Pegawai Nomor {n}", "pengawas", "Dinas X",
                              "PETA1", "scored", 9, "") for n in range(40)]
        tmap.people = many
        text = pdf_text(to_pdf(tmap, printed=clock.now()))
        shown = sum(f"Pegawai Nomor {n}" in text for n in range(40))
        assert 0 < shown < 40 and f"+{40 - shown} lainnya" in text


def an_unknown_nip_changes_nothing(database, clock):
    outsider = "199901012020011999"
    with database.transaction() as db:
        ratings = db.scalar(select(func.count()).select_from(PerformanceRating))
        events = db.scalar(select(func.count()).select_from(AuditEvent))
        changed = dict.fromkeys(RATED, "above")  # would move every box
        with pytest.raises(ImportFailed) as refused:
            import_programme_kinerja(db, programme=programme_by_code(db, CODE),
                                     data=kinerja_csv(changed, f"{outsider},2025,above\n"),
                                     source="salah.csv", actor="admin", now=clock.now())
        [problem] = refused.value.problems
        assert problem.item == outsider
        assert problem.location == f"row {len(changed) + 2}, column nip"
        assert CODE in problem.text("id") and CODE in problem.text("en")
        assert db.scalar(select(func.count()).select_from(PerformanceRating)) == ratings
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == events
        assert set(db.scalars(select(PerformanceRating.rating))) == set(RATINGS)
        assert audit.verify(db).ok


def test_the_programme_talent_map(programme, database, clock):
    """One simulated programme for the four: the map, its files, a crowded box in the PDF and
    a refused kinerja file."""
    the_map_places_scoreable_people_with_kinerja(database, clock)
    a_crowded_box_is_cut_with_more(database, clock)
    an_unknown_nip_changes_nothing(database, clock)
    with database.transaction() as db:
        export_map(db, programme=programme_by_code(db, CODE), fmt="pdf", actor="admin",
                   now=clock.now(), unit="Dinas Kesehatan")
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "programme.export_talent_map")).one()
        assert (event.data["format"], event.data["unit"]) == ("pdf", "Dinas Kesehatan")
        kinds = {e.action for e in db.scalars(select(AuditEvent))}
        assert {"programme.kinerja_import", "performance.import"} <= kinds


def test_pages_files_and_cli(programme, admin, database, settings, tmp_path):
    page = admin.get(f"/admin/programmes/{CODE}")
    assert f'href="/admin/programmes/{CODE}/talent-map"' in page.text
    page = admin.get(f"/admin/programmes/{CODE}/talent-map")
    assert page.status_code == 200
    assert f"0 dari {FIRST + SECOND} pegawai" in page.text

    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    bad = admin.post(f"/admin/programmes/{CODE}/talent-map/kinerja",
                     data={"csrf_token": token},
                     files={"file": ("kinerja.csv", kinerja_csv(
                         RATED, "199901012020011999,2025,above\n"), "text/csv")})
    assert bad.status_code == 422 and "199901012020011999" in bad.text
    assert f"baris {len(RATED) + 2}, kolom nip" in bad.text  # "row N, column nip"
    no_csrf = admin.post(f"/admin/programmes/{CODE}/talent-map/kinerja",
                         files={"file": ("kinerja.csv", kinerja_csv(RATED), "text/csv")})
    assert no_csrf.status_code in (400, 403)
    done = admin.post(f"/admin/programmes/{CODE}/talent-map/kinerja",
                      data={"csrf_token": token},
                      files={"file": ("kinerja.csv", kinerja_csv(RATED), "text/csv")})
    assert done.status_code == 200, done.text
    assert f"{len(RATED)} pegawai: {len(RATED)} nilai kinerja baru" in done.text

    with database.transaction(write=False) as db:
        want = expected_boxes(db, RATED)
    page = admin.get(f"/admin/programmes/{CODE}/talent-map")
    assert f"{len(want)} dari {FIRST + SECOND} pegawai" in page.text
    for box in range(1, 10):
        count = Counter(want.values())[box]
        assert f'<section class="card ninebox-list box-{box}" id="ninebox-{box}" ' \
               f'data-box="{box}" data-count="{count}">' in page.text
    unplaced = page.text.split('data-testid="unplaced"', 1)[1]
    assert 'data-reason="not_scoreable"' in unplaced and nip(ZERO) in unplaced
    assert "Tidak dapat dinilai (menunggu keputusan admin)" in unplaced
    only = admin.get(f"/admin/programmes/{CODE}/talent-map",
                     params={"job_group": "administrator"})
    admins = [n for n in range(1, 21) if n % 3 == 0]
    assert "Kelompok jabatan: administrator" in only.text
    assert f"{len(set(admins) & set(want))} dari {len(admins)} pegawai" in only.text

    sheet = admin.get(f"/admin/programmes/{CODE}/talent-map.xlsx",
                      params={"unit": "Dinas Pendidikan"})
    assert sheet.status_code == 200
    rows = list(load_workbook(io.BytesIO(sheet.content)).worksheets[0].iter_rows(
        min_row=2, values_only=True))
    assert {r[0] for r in rows} == {nip(n) for n in range(1, 21, 2)}
    pdf = admin.get(f"/admin/programmes/{CODE}/talent-map.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert f"{len(want)} dari {FIRST + SECOND} pegawai" in pdf_text(pdf.content)
    assert admin.get(f"/admin/programmes/{CODE}/talent-map.csv").status_code == 404
    assert admin.get("/admin/programmes/TIDAK-ADA/talent-map").status_code == 404

    env = {"CACT_SECRET_KEY": settings.resolved_secret()}
    for fmt in ("xlsx", "pdf"):
        out = tmp_path / f"peta.{fmt}"
        run = cact(database.url, "programme", "talent-map", CODE, "--format", fmt, "--out",
                   str(out), extra_env=env)
        assert run.returncode == 0, run.stderr
        data = out.read_bytes()
        if fmt == "pdf":
            assert f"{len(want)} dari {FIRST + SECOND} pegawai" in pdf_text(data)
        else:
            people = load_workbook(io.BytesIO(data)).worksheets[0]
            assert people.max_row == FIRST + SECOND + 1
    bad_format = cact(database.url, "programme", "talent-map", CODE, "--format", "csv",
                      "--out", str(tmp_path / "x"), extra_env=env)
    assert bad_format.returncode == 2
    changed = tmp_path / "kinerja.csv"
    changed.write_bytes(kinerja_csv({5: "above", 6: "above"}))
    run = cact(database.url, "programme", "kinerja", CODE, str(changed), extra_env=env)
    assert run.returncode == 0, run.stderr
    assert "Kinerja for 2 people" in run.stdout
    wrong = tmp_path / "salah.csv"
    wrong.write_bytes(kinerja_csv({}, "199901012020011999,2025,above\n"))
    run = cact(database.url, "programme", "kinerja", CODE, str(wrong), extra_env=env)
    assert run.returncode == 1 and "199901012020011999" in run.stderr
    with database.transaction(write=False) as db:
        tmap = talent_map(db, programme_by_code(db, CODE))
        assert tmap.placed == len(want) + 2
        assert [p.nip for p in tmap.unplaced["no_kinerja"]] == [nip(15)]
        actions = Counter(e.action for e in db.scalars(select(AuditEvent)))
    assert actions["programme.kinerja_import"] == 2
    assert actions["programme.export_talent_map"] == 4


def test_a_proctor_is_refused(programme, proctor):
    for path in ("talent-map", "talent-map.xlsx", "talent-map.pdf"):
        response = proctor.get(f"/admin/programmes/{CODE}/{path}", follow_redirects=False)
        assert response.status_code in (302, 303, 403), path
    page = proctor.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    refused = proctor.post(f"/admin/programmes/{CODE}/talent-map/kinerja",
                           data={"csrf_token": token},
                           files={"file": ("k.csv", kinerja_csv(RATED), "text/csv")},
                           follow_redirects=False)
    assert refused.status_code in (302, 303, 403)
