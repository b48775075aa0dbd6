"""The report pages over HTTP, on SQLite and PostgreSQL: one participant's report (page, PDF
in Indonesian and English, audited), all reports of a session as a zip built in polled steps,
the talent map with its kinerja upload, and the job standards page; who may see each.

The session is the scored scenario of test_scoring_service.py, taken through the taker API:
participant 1 (administrator) has integritas 4 / kerjasama 1 against a required 3, JPM 83.33,
Cukup Optimal, potensi Menengah; participant 2 (here named ``<b>x</b>``, pengawas) handed in
a blank test: JPM 50, Kurang Optimal, Rendah; participant 3 never logged in.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select

from app import audit
from app.main import create_app
from app.reports import zipjob
from app.scoring.models import JobStandard, PerformanceRating
from app.sessions.models import Participant
from tests.conftest import csrf_from, staff_login
from tests.integration.test_results_routes import api_take
from tests.integration.test_scoring_service import ANSWERS_1, build_session
from tests.integration.test_web import csp_problems

EVIL = "<b>x</b>"


@pytest.fixture
def scored(app, settings, database, clock):
    with database.transaction() as db:
        _, logins = build_session(db, clock, participants=3, secret=settings.resolved_secret())
        second = db.scalar(select(Participant).where(Participant.nip == logins[1][0]))
        second.name = EVIL
    api_take(app, *logins[0], ANSWERS_1, database)
    api_take(app, *logins[1], {}, database)
    return [nip for nip, _ in logins]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def events(database, action):
    with database.transaction(write=False) as db:
        return list(db.scalars(select(audit.AuditEvent).where(audit.AuditEvent.action == action)
                               .order_by(audit.AuditEvent.id)))


def section(html: str, marker: str) -> str:
    """The HTML of the <section> whose opening tag contains ``marker``."""
    start = html.index(marker)
    return html[start:html.index("</section>", start)]


# -- the individual report ----------------------------------------------------------------------


def test_report_page_shows_the_scored_participant(admin, scored, database):
    one, two, three = scored
    results = admin.get("/admin/sessions/S1/results").text
    assert f'href="/admin/sessions/S1/results/{one}"' in results
    assert 'href="/admin/sessions/S1/talent-map"' in results

    page = admin.get(f"/admin/sessions/S1/results/{one}")
    with database.transaction(write=False) as s:  # who looked at whose results
        viewed = s.scalar(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "report.view"))
    assert (viewed.target, viewed.data["session"]) == (f"participant:{one}", "S1")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert csp_problems(html) == []
    assert "Laporan individu: Peserta 1" in html and one in html
    assert "Administrator" in html
    table = section(html, 'data-testid="psychogram"')
    integritas = table[table.index('data-competency="integritas"'):]
    assert re.search(r"Integritas</th>\s*<td[^>]*>3</td>\s*<td[^>]*>4</td>\s*<td[^>]*>\+1<",
                     integritas)
    assert re.search(r"Kerja sama</th>\s*<td[^>]*>3</td>\s*<td[^>]*>1</td>\s*<td[^>]*>-2<",
                     table)
    assert "<svg" in table  # the psychogram picture
    assert 'data-testid="report-jpm">83,33%' in html  # Indonesian decimal comma
    assert 'data-testid="report-category">Cukup Optimal' in html
    assert "Integritas" in section(html, 'data-testid="strengths"')
    assert "Kerja sama" in section(html, 'data-testid="development"')
    potensi = section(html, 'data-testid="potensi"')
    assert "Kemampuan intelektual" in potensi and "43,33" in potensi and "Rendah" in potensi
    assert "Kecerdasan emosional" in potensi and "Tinggi" in potensi
    recommendation = section(html, 'data-testid="recommendation"')
    assert "Cukup Optimal" in recommendation and "Prioritas pengembangan: Kerja sama" in \
        recommendation
    assert "Belum ada kotak talenta" in section(html, 'data-testid="report-ninebox"')

    admin.cookies.set("cact_lang", "en")
    english = admin.get(f"/admin/sessions/S1/results/{one}").text
    assert "Individual report: Peserta 1" in english and "83.33%" in english
    assert "Teamwork" in english and "Development priorities: Teamwork" in english
    admin.cookies.delete("cact_lang")

    absent = admin.get(f"/admin/sessions/S1/results/{three}")
    assert absent.status_code == 200 and 'data-testid="report-not-scored"' in absent.text
    assert admin.get(f"/admin/sessions/S1/results/{three}.pdf").status_code == 404
    assert admin.get("/admin/sessions/S1/results/199999999999999999").status_code == 404
    assert admin.get(f"/admin/sessions/NOPE/results/{one}").status_code == 404
    escaped = admin.get(f"/admin/sessions/S1/results/{two}").text
    assert EVIL not in escaped and "&lt;b&gt;x&lt;/b&gt;" in escaped


def test_pdf_report_in_both_languages_is_audited(admin, scored, database):
    one = scored[0]
    response = admin.get(f"/admin/sessions/S1/results/{one}.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    assert f"laporan-{one}-Peserta_1.pdf" in response.headers["content-disposition"]
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    assert one in text and "Peserta 1" in text and "Laporan Hasil Asesmen Individu" in text
    assert "Cukup Optimal" in text and "83,33" in text and "Kerja sama" in text

    english = admin.get(f"/admin/sessions/S1/results/{one}.pdf?lang=en")
    assert english.status_code == 200 and english.content.startswith(b"%PDF")
    text = pdf_text(english.content)
    assert "Individual Assessment Report" in text and "Teamwork" in text and one in text

    downloads = events(database, "report.download")
    assert [(e.actor, e.target, e.data["lang"]) for e in downloads] == [
        ("user:admin", f"participant:{one}", "id"), ("user:admin", f"participant:{one}", "en")]


# -- all reports as one zip ---------------------------------------------------------------------


def run_job(client, location: str, token: str) -> str:
    """Poll the job's step the way the progress bar does until it reports 100 %."""
    code, job = re.match(r"/admin/sessions/([^/]+)/reports/([^/]+)$", location).groups()
    for _ in range(50):
        step = client.post(f"/admin/sessions/{code}/reports/{job}/step",
                           headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert step.status_code == 200, step.text
        assert "<html" not in step.text
        if 'data-percent="100"' in step.text:
            return step.text
    raise AssertionError("the zip never finished")


def test_zip_of_all_reports_with_progress(admin, scored, database, settings):
    results = admin.get("/admin/sessions/S1/results").text
    token = csrf_from(results)
    assert 'hx-post="/admin/sessions/S1/reports"' in results
    assert "Belum ada ZIP" in admin.get("/admin/sessions/S1/reports").text

    started = admin.post("/admin/sessions/S1/reports", data={"csrf_token": token, "lang": "id"},
                         follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    job = location.rsplit("/", 1)[1]
    assert job.startswith("S1-")
    page = admin.get(location)
    assert page.status_code == 200 and csp_problems(page.text) == []
    assert 'data-percent="0"' in page.text and "0 dari 2" in page.text
    assert f'hx-post="/admin/sessions/S1/reports/{job}/step"' in page.text

    done = run_job(admin, location, token)
    assert "ZIP siap: 2 laporan" in done
    link = f"/admin/sessions/S1/reports/{job}.zip"
    assert f'href="{link}"' in done
    assert (settings.data_dir / "reports" / f"{job}.zip").exists()
    assert not (settings.data_dir / "reports" / f"{job}.parts").exists()
    assert f'href="{link}"' in admin.get("/admin/sessions/S1/reports").text  # latest job

    archive = admin.get(link)
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        names = sorted(bundle.namelist())
        assert names == [f"laporan-{scored[0]}-Peserta_1.pdf", f"laporan-{scored[1]}-b_x_b.pdf"]
        for name, nip in zip(names, scored[:2], strict=True):
            data = bundle.read(name)
            assert data.startswith(b"%PDF") and nip in pdf_text(data)

    assert [e.data["reports"] for e in events(database, "report.zip")] == [2]
    zip_downloads = [e for e in events(database, "report.download")
                     if e.data.get("format") == "zip"]
    assert [(e.target, e.data["job"]) for e in zip_downloads] == [("session:S1", job)]

    # A job is bound to its session, and its name cannot leave the reports folder.
    assert admin.get(f"/admin/sessions/S2/reports/{job}.zip").status_code == 404
    assert admin.get("/admin/sessions/S1/reports/..%2Fsecret_key.zip").status_code == 404
    assert admin.post("/admin/sessions/S1/reports/S1-x/step",
                      headers={"X-CSRF-Token": token}).status_code == 404


def test_zip_job_continues_on_another_worker(admin, scored, settings, database, clock):
    """The job's state is in files: a second app (another worker) finishes what the first
    began, and a poll through htmx gets the fragment."""
    token = csrf_from(admin.get("/admin/sessions/S1/results").text)
    started = admin.post("/admin/sessions/S1/reports", data={"csrf_token": token, "lang": "en"},
                         headers={"HX-Request": "true"})
    assert started.status_code == 200 and "<html" not in started.text
    job = re.search(r"/reports/(S1-[^/\"]+)/step", started.text).group(1)
    half = zipjob.advance_zip(settings.data_dir, job, session="S1", budget_s=0)
    assert (half.done, half.total, half.percent, half.finished) == (1, 2, 50, False)

    with TestClient(create_app(settings, clock=clock, database=database)) as other:
        staff_login(other, "admin", "correct-horse-1")
        other_token = csrf_from(other.get("/admin/sessions/S1/results").text)
        done = run_job(other, f"/admin/sessions/S1/reports/{job}", other_token)
        assert "ZIP siap: 2 laporan" in done  # the page's language; the PDFs' is the job's
        archive = other.get(f"/admin/sessions/S1/reports/{job}.zip")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        assert len(bundle.namelist()) == 2
        assert all(n.startswith("report-") for n in bundle.namelist())
        assert "Individual Assessment Report" in pdf_text(bundle.read(bundle.namelist()[0]))


# -- the talent map -----------------------------------------------------------------------------


def test_talent_map_with_kinerja_upload(admin, scored, database):
    one, two, _ = scored
    page = admin.get("/admin/sessions/S1/talent-map")
    assert page.status_code == 200 and csp_problems(page.text) == []
    html = page.text
    assert "0 dari 2 peserta" in html
    unplaced = section(html, 'data-testid="unplaced"')
    assert "Peserta 1" in unplaced and "&lt;b&gt;x&lt;/b&gt;" in unplaced
    assert "Impor nilai kinerja" in html
    assert EVIL not in html

    token = csrf_from(html)
    bad = "nip,period,rating\n123,2025,above\n" + f"{two},2025,luar biasa\n"
    refused = admin.post("/admin/sessions/S1/talent-map/kinerja", data={"csrf_token": token},
                         files={"file": ("kinerja.csv", bad.encode(), "text/csv")})
    assert refused.status_code == 422
    problems = section(refused.text, 'data-testid="import-errors"') + refused.text
    # located in the page's language: "row 2, column nip (A)" in Indonesian
    assert "baris 2, kolom nip (A)" in problems and "baris 3, kolom rating (C)" in problems
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(PerformanceRating)) == 0

    good = f"nip,period,rating\n{one},2025,above\n{two},2025,di bawah ekspektasi\n"
    imported = admin.post("/admin/sessions/S1/talent-map/kinerja", data={"csrf_token": token},
                          files={"file": ("kinerja.csv", good.encode(), "text/csv")})
    assert imported.status_code == 200
    html = imported.text
    assert "2 nilai kinerja baru" in html and "2 hasil dihitung ulang" in html
    assert "2 dari 2 peserta" in html
    # Participant 1: Menengah x above = box 7; participant 2: Rendah x below = box 1.
    assert 'id="ninebox-box-7" data-box="7" data-count="1"' in html
    assert 'id="ninebox-box-1" data-box="1" data-count="1"' in html
    assert 'id="ninebox-box-9" data-box="9" data-count="0"' in html
    assert 'href="#ninebox-7"' in html
    box7 = section(html, 'id="ninebox-7"')
    assert "Peserta 1" in box7 and "Dipertahankan, masuk kelompok rencana suksesi" in box7
    box1 = section(html, 'id="ninebox-1"')
    assert "&lt;b&gt;x&lt;/b&gt;" in box1 and "disiplin" in box1
    assert EVIL not in html
    assert "Peserta 1" not in section(html, 'data-testid="unplaced"')
    assert [e.data["added"] for e in events(database, "performance.import")] == [2]

    report = admin.get(f"/admin/sessions/S1/results/{one}").text
    assert 'data-testid="report-box">7' in report
    assert "Kotak 7: Kinerja di atas ekspektasi, potensi menengah" in report
    assert "Peta talenta kotak 7" in section(report, 'data-testid="recommendation"')

    admin.cookies.set("cact_lang", "en")
    english = admin.get("/admin/sessions/S1/talent-map").text
    assert "Retain, succession pool, job enrichment" in english and "Performance" in english


# -- job standards ------------------------------------------------------------------------------


def test_standards_page_edit_defaults_and_import(admin, database):
    page = admin.get("/admin/standards")
    assert page.status_code == 200 and csp_problems(page.text) == []
    assert 'href="/admin/standards" aria-current="page"' in page.text
    assert 'data-cell="administrator|integritas"' in page.text
    assert re.search(r'data-cell="fungsional:Ahli Utama\|integritas"><a [^>]*class="is-default">5',
                     page.text)
    token = csrf_from(page.text)
    form = {"job_key": "administrator", "competency": "integritas", "level": "4"}
    assert admin.post("/admin/standards/level", data=form).status_code == 403  # no CSRF
    saved = admin.post("/admin/standards/level", data={**form, "csrf_token": token})
    assert saved.status_code == 200 and "level 3 menjadi 4" in saved.text
    assert re.search(r'data-cell="administrator\|integritas"><a [^>]*>4</a>', saved.text)
    invalid = admin.post("/admin/standards/level",
                         data={**form, "level": "7", "csrf_token": token})
    assert invalid.status_code == 422 and 'data-testid="standards-error"' in invalid.text
    with database.transaction(write=False) as db:
        rows = db.scalars(select(JobStandard)).all()
        assert [(r.job_key, r.competency, r.required_level) for r in rows] == [
            ("administrator", "integritas", 4)]
    [edit] = events(database, "standards.edit")
    assert edit.data == {"job_key": "administrator", "competency": "integritas", "old": 3,
                         "new": 4, "was_default": True}

    bad = ("job_key,competency,required_level\n"
           "direktur,integritas,3\n"
           "pengawas,kerjasama,9\n"
           "pelaksana,komunikasi,2\n")
    refused = admin.post("/admin/standards/import", data={"csrf_token": token},
                         files={"file": ("standar.csv", bad.encode(), "text/csv")})
    assert refused.status_code == 422
    assert "baris 2, kolom job_key (A)" in refused.text  # "row 2, column ..." in Indonesian
    assert "baris 3, kolom required_level (C)" in refused.text
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(JobStandard)) == 1  # nothing imported

    good = "job_key,competency,required_level\npelaksana,komunikasi,2\nadministrator,integritas,4\n"
    imported = admin.post("/admin/standards/import", data={"csrf_token": token},
                          files={"file": ("standar.csv", good.encode(), "text/csv")})
    assert imported.status_code == 200 and "1 ditambahkan, 0 diubah, 1 tetap" in imported.text

    defaults = admin.post("/admin/standards/defaults", data={"csrf_token": token})
    assert defaults.status_code == 200 and "97 standar bawaan ditambahkan" in defaults.text
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(JobStandard)) == 99
        kept = db.scalar(select(JobStandard.required_level).where(
            JobStandard.job_key == "administrator", JobStandard.competency == "integritas"))
        assert kept == 4  # the defaults never overwrite a change
    assert [e.data["added"] for e in events(database, "standards.load_defaults")] == [97]
    assert len(events(database, "standards.import")) == 1


# -- access -------------------------------------------------------------------------------------

JOB = "S1-20260101-080000-abcdef"


def new_routes(nip: str) -> list[tuple[str, str]]:
    return [("GET", f"/admin/sessions/S1/results/{nip}"),
            ("GET", f"/admin/sessions/S1/results/{nip}.pdf"),
            ("POST", "/admin/sessions/S1/reports"), ("GET", "/admin/sessions/S1/reports"),
            ("GET", f"/admin/sessions/S1/reports/{JOB}"),
            ("POST", f"/admin/sessions/S1/reports/{JOB}/step"),
            ("GET", f"/admin/sessions/S1/reports/{JOB}.zip"),
            ("GET", "/admin/sessions/S1/talent-map"),
            ("POST", "/admin/sessions/S1/talent-map/kinerja"),
            ("GET", "/admin/standards"), ("POST", "/admin/standards/level"),
            ("POST", "/admin/standards/defaults"), ("POST", "/admin/standards/import")]


def test_proctor_gets_403_and_anonymous_goes_to_login(client, make_user, scored):
    routes = new_routes(scored[0])
    for method, path in routes:
        token = csrf_from(client.get("/login").text)
        response = client.request(method, path, data={"csrf_token": token},
                                  follow_redirects=False)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/login"), (method, path)
    staff_login(client, "pak.budi", make_user("pak.budi", role="proctor"))
    token = csrf_from(client.get("/proctor").text)
    for method, path in routes:
        response = client.request(method, path, data={"csrf_token": token},
                                  headers={"X-CSRF-Token": token}, follow_redirects=False)
        assert response.status_code == 403, (method, path, response.status_code)
