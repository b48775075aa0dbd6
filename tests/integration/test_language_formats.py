"""The staff pages, the report PDF and the XLSX export in the chosen language: the same JPM is
"83,33" in Indonesian and "83.33" in English on the results table, the report page and the PDF;
the XLSX holds numbers with a display format; a refused roster says where in Indonesian
("baris 3, kolom nip (A)"), and so does a refused job standards file, with its messages; item
kinds are named, not coded, on the bank pages."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from app.bank.models import BankVersion
from tests.conftest import csrf_from, log_in_admin
from tests.factories import bank_zip
from tests.integration.test_bank_routes import upload as bank_upload
from tests.integration.test_results_routes import api_take
from tests.integration.test_scoring_service import ANSWERS_1, build_session
from tests.integration.test_sessions import ROSTER, create_via_form, with_blueprint
from tests.integration.test_sessions import upload as roster_upload


@pytest.fixture
def scored(app, settings, database, clock):
    """Session S1: participant 1 answers ANSWERS_1 (JPM 83.33, total 24.5), 2 hands in blank."""
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=2, secret=settings.resolved_secret())
    api_take(app, *logins[0], ANSWERS_1, database)
    api_take(app, *logins[1], {}, database)
    return [nip for nip, _ in logins]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_results_table_and_report_write_the_jpm_as_the_language_does(
        client, make_user, scored):
    one = scored[0]
    log_in_admin(client, make_user)
    indonesian = client.get("/admin/sessions/S1/results").text
    assert re.search(r'data-testid="jpm">83,33<', indonesian)
    assert "83.33" not in indonesian
    report = client.get(f"/admin/sessions/S1/results/{one}").text
    assert 'data-testid="report-jpm">83,33%<' in report  # the same value, the same way

    client.cookies.set("cact_lang", "en")
    english = client.get("/admin/sessions/S1/results").text
    assert re.search(r'data-testid="jpm">83.33<', english)
    assert "83,33" not in english
    report = client.get(f"/admin/sessions/S1/results/{one}").text
    assert 'data-testid="report-jpm">83.33%<' in report


def test_report_pdf_numbers_and_date_in_the_chosen_language(client, make_user, scored):
    one = scored[0]
    log_in_admin(client, make_user)
    indonesian = pdf_text(client.get(f"/admin/sessions/S1/results/{one}.pdf").content)
    english = pdf_text(client.get(f"/admin/sessions/S1/results/{one}.pdf?lang=en").content)
    assert "83,33%" in indonesian and "43,33" in indonesian
    assert "83.33%" in english and "43.33" in english
    assert "83.33" not in indonesian and "83,33" not in english
    # the date: "5 Desember 2026" / "December 5, 2026" (whatever the frozen clock's day)
    indonesian_months = ("Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|"
                         "Oktober|November|Desember")
    assert re.search(rf"\b\d{{1,2}} ({indonesian_months}) \d{{4}}\b", indonesian)
    assert re.search(r"\b(January|February|March|April|May|June|July|August|September|"
                     r"October|November|December) \d{1,2}, \d{4}\b", english)


def test_xlsx_keeps_numbers_as_numbers_with_a_display_format(client, make_user, scored):
    log_in_admin(client, make_user)
    book = load_workbook(io.BytesIO(client.get("/admin/sessions/S1/results.xlsx").content))
    sheet = book["Hasil"]
    header = [c.value for c in sheet[1]]
    first = sheet[2]
    jpm = first[header.index("jpm")]
    total = first[header.index("total_score")]
    nip = first[header.index("nip")]
    assert (jpm.data_type, jpm.value, jpm.number_format) == ("n", 83.33, "0.00")
    # raw scores are kept to 3 places (weights), and shown so
    assert (total.data_type, total.value, total.number_format) == ("n", 24.5, "0.000")
    assert nip.data_type == "s" and nip.number_format == "@"  # 18 digits stay text
    answers = book["Jawaban"]
    position = answers[2][2]
    assert isinstance(position.value, int) and position.number_format == "0"


@pytest.fixture
def planner(admin, database, clock):
    with database.transaction() as db:
        with_blueprint(db, clock)
    return admin


def test_a_refused_roster_says_where_in_the_language_of_the_page(planner, make_user):
    create_via_form(planner, proctors=[])
    bad = ROSTER.replace("198001012005011001", "1,98E+17").replace("Ahli Muda", "")
    refused = roster_upload(planner, bad.encode())
    assert refused.status_code == 422
    assert "baris 2, kolom nip (A)" in refused.text and "baris 3, kolom jenjang (D)" in refused.text
    assert "row 2" not in refused.text and "column" not in refused.text

    planner.cookies.set("cact_lang", "en")
    refused = roster_upload(planner, bad.encode())
    assert "row 2, column nip (A)" in refused.text and "baris" not in refused.text


def test_item_kinds_are_named_on_the_bank_pages(admin):
    assert bank_upload(admin, "uji.zip", bank_zip()).status_code == 200
    items = admin.get("/admin/banks/UJI-POT/v/1").text
    rows = items[items.index("<tbody"):]
    assert "<td>pilihan tunggal</td>" in rows and "<td>bobot</td>" in rows
    assert "<td>single</td>" not in rows and "<td>weighted</td>" not in rows
    assert '<option value="multiple">pilihan ganda kompleks</option>' in items
    assert '<option value="likert">skala Likert</option>' in items

    admin.cookies.set("cact_lang", "en")
    items = admin.get("/admin/banks/UJI-POT/v/1").text
    rows = items[items.index("<tbody"):]
    assert "<td>single choice</td>" in rows and "<td>weighted options</td>" in rows


def test_a_refused_job_standards_file_is_explained_in_the_language_of_the_page(admin):
    bad = ("job_key,competency,required_level\n"
           "direktur,integritas,3\n"
           "administrator,integritas,2\n"
           "administrator,integritas,3\n")

    def send():
        token = csrf_from(admin.get("/admin/standards").text)
        return admin.post("/admin/standards/import", data={"csrf_token": token},
                          files={"file": ("standar.csv", bad.encode(), "text/csv")})

    refused = send()
    assert refused.status_code == 422
    assert "baris 2, kolom job_key (A)" in refused.text
    assert "jabatan &#39;direktur&#39; tidak dikenal" in refused.text
    assert "sudah tercantum di baris 3" in refused.text
    assert "unknown job" not in refused.text and "already given" not in refused.text

    admin.cookies.set("cact_lang", "en")
    refused = send()
    assert "row 2, column job_key (A)" in refused.text
    assert "unknown job &#39;direktur&#39;" in refused.text
    assert "already given in row 3" in refused.text


def test_the_item_analysis_legend_writes_its_thresholds_as_the_language_does(admin, database):
    assert bank_upload(admin, "uji.zip", bank_zip()).status_code == 200
    with database.transaction(write=False) as db:
        version = db.scalar(select(BankVersion.id))
    legend = admin.get(f"/admin/analysis/{version}").text
    assert "p &gt; 0,95, p &lt; 0,1" in legend
    admin.cookies.set("cact_lang", "en")
    assert "p &gt; 0.95, p &lt; 0.1" in admin.get(f"/admin/analysis/{version}").text


def test_a_blueprint_that_is_not_text_is_refused_in_the_language_of_the_page(admin):
    def send():
        token = csrf_from(admin.get("/admin/blueprints").text)
        return admin.post("/admin/blueprints/upload", data={"csrf_token": token},
                          files={"file": ("kisi.yaml", b"\xff\xfe\x00bad", "text/yaml")})

    refused = send()
    assert refused.status_code == 422 and "berkas kisi-kisi bukan teks UTF-8" in refused.text
    admin.cookies.set("cact_lang", "en")
    refused = send()
    assert refused.status_code == 422 and "not UTF-8 text" in refused.text


def test_dates_and_times_on_a_session_page_in_the_language_of_the_page(planner):
    assert create_via_form(planner, proctors=[]).status_code == 303  # 08:00-12:00 WIB
    page = planner.get("/admin/sessions/WEB-1").text
    assert "1 Des 2026 08.00" in page and "1 Des 2026 12.00" in page
    planner.cookies.set("cact_lang", "en")
    page = planner.get("/admin/sessions/WEB-1").text
    assert "Dec 1, 2026, 08:00" in page and "Dec 1, 2026, 12:00" in page
