"""The results page's compact default view over HTTP (SQLite and PostgreSQL): the eight columns
an admin reads (name with NIP, job, unit, JPM, category, potensi, box, validity), every column
on request, and the rows in groups, people with a result first, those who came without one
next, the absent last, whatever the sort. The export keeps every column."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.sessions.models import Participant
from tests.conftest import log_in_admin
from tests.integration.test_results_routes import api_take
from tests.integration.test_scoring_service import ANSWERS_1, build_session
from tests.integration.test_web import csp_problems

ROW = re.compile(r'<tr data-nip="(\d+)" data-group="(\w+)">')
HEADERS = re.compile(r"<thead>(.*?)</thead>", re.S)


@pytest.fixture
def mixed(app, settings, database, clock):
    """Session S1, five people in NIP order: 1 and 2 never come, 3 answers ANSWERS_1, 4 logs
    in and stops there, 5 hands in a blank test. Units differ, so the unit sort has work."""
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=5,
                                  secret=settings.resolved_secret())
        units = ["Dinas Pendidikan", "Badan Kepegawaian Daerah", "Sekretariat Daerah",
                 "Dinas Kesehatan", "Badan Perencanaan Pembangunan Daerah"]
        for (nip, _), unit in zip(logins, units, strict=True):
            db.scalar(select(Participant).where(Participant.nip == nip)).unit = unit
    api_take(app, *logins[2], ANSWERS_1, database)
    taker = TestClient(app)
    nip, token = logins[3]
    assert taker.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                   "workstation": "PC-4"}).status_code == 200
    api_take(app, *logins[4], {}, database)
    return [nip for nip, _ in logins]


def _rows(html: str) -> list[tuple[str, str]]:
    return ROW.findall(html)


def test_scored_first_then_present_then_absent_in_every_order(client, make_user, mixed):
    one, two, three, four, five = mixed
    log_in_admin(client, make_user)
    page = client.get("/admin/sessions/S1/results")
    assert page.status_code == 200 and csp_problems(page.text) == []
    # NIP order inside each group; the group, not the NIP, decides who comes first.
    assert _rows(page.text) == [(three, "scored"), (five, "scored"), (four, "pending"),
                                (one, "absent"), (two, "absent")]
    groups = re.findall(r'<tbody class="result-group" data-group="(\w+)"', page.text)
    assert groups == ["scored", "pending", "absent"]
    assert "Sudah ada hasil (2)" in page.text and "Tidak hadir (2)" in page.text
    assert "Hadir, belum ada hasil (1)" in page.text and "belum mulai" in page.text
    assert 'scope="rowgroup"' in page.text

    for sort, direction in (("name", "desc"), ("jpm", "asc"), ("jpm", "desc"), ("unit", "asc"),
                            ("nip", "desc"), ("box", "desc")):
        html = client.get(f"/admin/sessions/S1/results?sort={sort}&dir={direction}").text
        kinds = [group for _, group in _rows(html)]
        assert kinds == ["scored", "scored", "pending", "absent", "absent"], (sort, direction)
    by_unit = _rows(client.get("/admin/sessions/S1/results?sort=unit&dir=asc").text)
    # Absent: Badan Kepegawaian (2) before Dinas Pendidikan (1); scored: Badan Perencanaan (5)
    # before Sekretariat (3).
    assert [nip for nip, _ in by_unit] == [five, three, four, two, one]
    by_name = _rows(client.get("/admin/sessions/S1/results?sort=name&dir=desc").text)
    assert [nip for nip, _ in by_name] == [five, three, four, two, one]  # Peserta 5 > 3; 2 > 1


def test_the_compact_view_has_eight_columns_and_all_columns_one_click_away(
        client, make_user, mixed):
    log_in_admin(client, make_user)
    compact = client.get("/admin/sessions/S1/results?sort=jpm&dir=desc").text
    head = HEADERS.search(compact).group(1)
    assert head.count("<th ") == 8
    for label in ("Nama", "NIP", "Jabatan", "Unit kerja", "JPM", "Kategori", "Potensi", "Kotak",
                  "Keabsahan"):
        assert label in head, label
    assert "Integritas" not in head and "Skor total" not in head
    assert "Sekretariat Daerah" in compact  # the unit is shown
    assert compact.count("Dapat dinilai") == 2  # validity of both results (rules are off here)
    # The switch keeps the order; the full view's sort links keep the view.
    link = re.search(r'href="([^"]+)"[^>]*data-testid="results-all-columns"', compact).group(1)
    assert link.replace("&amp;", "&") == "?sort=jpm&dir=desc&view=all"

    full = client.get("/admin/sessions/S1/results?sort=jpm&dir=desc&view=all").text
    head = HEADERS.search(full).group(1)
    assert "Integritas" in head and "Skor total" in head
    assert head.count("<th ") > 9
    assert 'href="?sort=name&amp;dir=asc&amp;view=all"' in head
    assert 'data-testid="results-compact"' in full
    back = re.search(r'href="([^"]+)"[^>]*data-testid="results-compact"', full).group(1)
    assert back.replace("&amp;", "&") == "?sort=jpm&dir=desc"
    assert [g for _, g in _rows(full)] == ["scored", "scored", "pending", "absent", "absent"]

    client.cookies.set("cact_lang", "en")
    english = client.get("/admin/sessions/S1/results").text
    assert "With a result (2)" in english and "Absent (2)" in english
    assert "All columns" in english and "Validity" in english


def test_the_export_keeps_every_column(client, make_user, mixed):
    log_in_admin(client, make_user)
    rows = list(csv.DictReader(io.StringIO(
        client.get("/admin/sessions/S1/results.csv").content.decode("utf-8-sig"))))
    assert [r["nip"] for r in rows] == sorted(mixed)  # the export's own order: by NIP
    columns = set(rows[0])
    assert {"nip", "name", "unit", "total_score", "jpm", "category", "potensi_band"} <= columns
    assert any(c.endswith(".level") for c in columns)  # the constructs
