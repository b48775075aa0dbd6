"""Rosters, job standards and kinerja lists as admins keep them: an .xlsx workbook, Excel's
"CSV (Comma delimited)" in Windows-1252 with semicolons, UTF-16 text with tabs and a CSV with
Excel for Mac's CR-only line endings, each through the service, the `cact` command and the
upload page. A broken file is a located refusal that changes nothing; a bank saved as .xlsx
imports like its CSV; a zip of QTI files without its manifest says so. Every file is made
here. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from app.bank.models import Item, ItemOption
from app.bank.parsed import ImportFailed
from app.scoring.imports import import_ratings, import_standards, parse_ratings, parse_standards
from app.scoring.models import JobStandard, PerformanceRating
from app.sessions import roster
from app.sessions.models import Participant, RosterEntry, TestSession
from tests.conftest import csrf_from
from tests.factories import run_import
from tests.integration.test_demo_and_cli import cact
from tests.integration.test_roster import SECRET, scheduled

NIP_A, NIP_B = "198504122010011001", "199107232019032002"
NAMES = {NIP_A: "Sérgio Almeida", NIP_B: "Nur’aini Putri"}
CODE = "XL-1"

ROSTER = [["nip", "nama", "kelompok_jabatan"],
          [NIP_A, NAMES[NIP_A], "pengawas"], [NIP_B, NAMES[NIP_B], "pelaksana"]]
STANDARDS = [["job_key", "competency", "required_level"],
             ["pengawas", "integritas", 4], ["pelaksana", "kerjasama", 2]]
KINERJA = [["nip", "period", "rating"],
           [NIP_A, "2025", 90.9], [NIP_B, "2025", "di atas ekspektasi"]]
TABLES = {"roster": ROSTER, "standards": STANDARDS, "kinerja": KINERJA}


def xlsx(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def text_cell(value, decimal_comma: bool) -> str:
    if isinstance(value, float):
        return str(value).replace(".", ",") if decimal_comma else str(value)
    return str(value)


def encoded(rows, fmt: str) -> bytes:
    """The file as each program writes it."""
    if fmt == "xlsx":
        return xlsx(rows)
    if fmt == "cp1252":  # Excel on Windows, Indonesian settings: "CSV (Comma delimited)"
        lines = [";".join(text_cell(v, True) for v in row) for row in rows]
        return "\r\n".join(lines).encode("cp1252") + b"\r\n"
    if fmt == "utf16":  # Excel's "Unicode Text": UTF-16 with a BOM, tabs
        lines = ["\t".join(text_cell(v, False) for v in row) for row in rows]
        return ("\r\n".join(lines) + "\r\n").encode("utf-16")
    assert fmt == "cr"  # Excel for Mac: CR-only line endings
    return ("\r".join(",".join(text_cell(v, False) for v in row) for row in rows)
            + "\r").encode("utf-8")


def env(settings) -> dict[str, str]:
    return {"CACT_SECRET_KEY": settings.resolved_secret()}


SUFFIX = {"xlsx": ".xlsx", "cp1252": ".csv", "utf16": ".csv", "cr": ".csv"}


def prepare(database, clock, kind: str) -> None:
    """What an import needs first: a session for a roster, its people for kinerja."""
    if kind == "standards":
        return
    with database.transaction() as db:
        session = scheduled(db, clock, code=CODE)
        if kind == "kinerja":
            rows = roster.parse_roster(encoded(ROSTER, "cr"), source="peserta.csv")
            roster.import_roster(db, session=session, rows=rows, secret=SECRET, actor="test",
                                 now=clock.now())


def via_service(database, clock, kind: str, data: bytes, name: str) -> None:
    with database.transaction() as db:
        if kind == "roster":
            session = db.scalar(select(TestSession).where(
                TestSession.code == CODE))
            rows = roster.parse_roster(data, source=name)
            roster.import_roster(db, session=session, rows=rows, secret=SECRET, actor="test",
                                 now=clock.now())
        elif kind == "standards":
            import_standards(db, rows=parse_standards(data, source=name), source=name,
                             actor="test", now=clock.now())
        else:
            import_ratings(db, rows=parse_ratings(data, source=name), source=name,
                           actor="test", now=clock.now())


COMMANDS = {"roster": ("roster", "import", CODE), "standards": ("standards", "import"),
            "kinerja": ("performance", "import")}
PAGES = {"roster": f"/admin/sessions/{CODE}/roster", "standards": "/admin/standards/import",
         "kinerja": f"/admin/sessions/{CODE}/talent-map/kinerja"}


def stored(database, kind: str):
    with database.transaction(write=False) as db:
        if kind == "roster":
            return sorted(db.execute(select(Participant.nip, Participant.name)).all())
        if kind == "standards":
            return sorted(db.execute(select(JobStandard.job_key, JobStandard.competency,
                                            JobStandard.required_level)).all())
        return sorted(db.execute(select(Participant.nip, PerformanceRating.rating,
                                        PerformanceRating.score)
                                 .join(Participant,
                                       Participant.id == PerformanceRating.participant_id)).all())


EXPECTED = {
    "roster": [(NIP_A, NAMES[NIP_A]), (NIP_B, NAMES[NIP_B])],
    "standards": [("pelaksana", "kerjasama", 2), ("pengawas", "integritas", 4)],
    "kinerja": [(NIP_A, "as_expected", Decimal("90.9")), (NIP_B, "above", None)],
}


@pytest.mark.parametrize("fmt", ["xlsx", "cp1252", "utf16", "cr"])
@pytest.mark.parametrize("kind", ["roster", "standards", "kinerja"])
@pytest.mark.parametrize("channel", ["service", "cli", "page"])
def test_imports_from_spreadsheets_as_saved(channel, kind, fmt, database, settings, clock,
                                            tmp_path, request):
    prepare(database, clock, kind)
    data, name = encoded(TABLES[kind], fmt), f"{kind}{SUFFIX[fmt]}"
    if channel == "service":
        via_service(database, clock, kind, data, name)
    elif channel == "cli":
        path = tmp_path / name
        path.write_bytes(data)
        run = cact(database.url, *COMMANDS[kind], str(path), extra_env=env(settings))
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    else:
        admin = request.getfixturevalue("admin")
        token = csrf_from(admin.get("/admin/standards").text)
        page = admin.post(PAGES[kind], data={"csrf_token": token},
                          files={"file": (name, data, "application/octet-stream")})
        assert page.status_code == 200, page.text[-2000:]
    assert stored(database, kind) == EXPECTED[kind]


def test_a_nip_excel_stored_as_a_number_is_refused_at_its_cell(database, settings, clock,
                                                                tmp_path):
    prepare(database, clock, "roster")
    data = xlsx([["nip", "nama", "kelompok_jabatan"], [NIP_A, "Siti", "pengawas"],
                 [int(NIP_B), "Budi", "pelaksana"]])
    with pytest.raises(ImportFailed) as failed:
        roster.parse_roster(data, source="peserta.xlsx")
    [refusal] = failed.value.problems
    assert refusal.location == "row 3, column nip (A)" and refusal.key == "roster_nip_scientific"
    assert "1.99107E+17" in refusal.message and "Format Cells > Text" in refusal.message
    path = tmp_path / "peserta.xlsx"
    path.write_bytes(data)
    run = cact(database.url, "roster", "import", CODE, str(path), extra_env=env(settings))
    assert run.returncode == 1 and "row 3, column nip (A)" in run.stderr
    assert "Traceback" not in run.stderr
    # kinerja lists are read the same way
    with pytest.raises(ImportFailed) as failed:
        parse_ratings(xlsx([["nip", "period", "rating"], [int(NIP_A), "2025", "baik"]]),
                      source="kinerja.xlsx")
    assert [(p.location, p.key) for p in failed.value.problems] == [
        ("row 2, column nip (A)", "roster_nip_scientific")]


UNCLOSED = ("nip,nama,kelompok_jabatan\r"
            f'{NIP_A},"Siti Rahma,pengawas\r' + "x" * 200 * 1024 + "\r").encode()


def test_a_quote_never_closed_is_a_located_refusal_that_changes_nothing(admin, database,
                                                                        settings, clock,
                                                                        tmp_path):
    prepare(database, clock, "roster")
    for parse in (roster.parse_roster, parse_standards, parse_ratings):
        with pytest.raises(ImportFailed) as failed:
            parse(UNCLOSED, source="rusak.csv")
        [refusal] = failed.value.problems
        assert (refusal.location, refusal.key) == ("line 2", "table_csv_unclosed_quote")
        assert "never closed" in refusal.message and "tidak pernah ditutup" in refusal.text("id")
    path = tmp_path / "rusak.csv"
    path.write_bytes(UNCLOSED)
    run = cact(database.url, "roster", "import", CODE, str(path), extra_env=env(settings))
    assert run.returncode == 1 and "line 2" in run.stderr and "Traceback" not in run.stderr
    token = csrf_from(admin.get(f"/admin/sessions/{CODE}").text)
    page = admin.post(PAGES["roster"], data={"csrf_token": token},
                      files={"file": ("rusak.csv", UNCLOSED, "text/csv")},
                      headers={"HX-Request": "true"})
    assert page.status_code == 422 and "tidak pernah ditutup" in page.text
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(Participant)) == 0
        assert db.scalar(select(func.count()).select_from(RosterEntry)) == 0


def test_standards_and_kinerja_refuse_values_beyond_the_header():
    with pytest.raises(ImportFailed) as failed:
        parse_ratings(f"nip,period,rating\n{NIP_A},2025,90,9\n".encode(), source="k.csv")
    assert [(p.location, p.key) for p in failed.value.problems] == [
        ("row 2", "table_extra_values")]
    with pytest.raises(ImportFailed) as failed:
        parse_standards(b"job_key,competency,required_level,catatan\npengawas,integritas,4,x\n",
                        source="s.csv")
    assert [(p.location, p.key) for p in failed.value.problems] == [
        ("row 1, column D", "table_unknown_column")]
    assert "kolom 'catatan' tidak dikenal" in failed.value.problems[0].text("id")


BANK = [["code", "kind", "construct", "level", "stem", "option_a", "option_b", "option_c",
         "key", "weight_a", "weight_b", "weight_c"],
        ["X-1", "single", "potensi.numerik", 1, "Berapa 2+2?", 3, 4, 5, "B", None, None, None],
        ["X-2", "weighted", "potensi.interpersonal", None, "Anda diminta, secara halus, ...",
         "Menolak", "Menunda", "Menandatangani", None, 5, 3, 1.5]]


def bank_rows(db):
    items = db.scalars(select(Item).order_by(Item.code)).all()
    return [(i.code, i.kind, i.stem, [(o.content, o.is_key, o.weight) for o in db.scalars(
        select(ItemOption).where(ItemOption.item_id == i.id).order_by(ItemOption.position))])
        for i in items]


def test_a_bank_saved_as_xlsx_imports_like_its_csv(db, clock):
    csv_text = "\n".join(",".join("" if v is None else f'"{v}"' for v in row) for row in BANK)
    run_import(db, clock, "soal.csv", csv_text.encode(), code="UJI-CSV", title="CSV",
               kind="potensi")
    from_csv = bank_rows(db)
    db.rollback()
    outcome = run_import(db, clock, "soal.xlsx", xlsx(BANK), code="UJI-CSV", title="CSV",
                         kind="potensi")
    assert outcome.item_count == 2
    assert bank_rows(db) == from_csv and len(from_csv) == 2
    assert from_csv[1][3][2] == ("Menandatangani", False, Decimal("1.5"))


def test_a_zip_of_qti_files_without_its_manifest_says_so(db, clock):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in ("item1.xml", "item2.xml"):
            zipped.writestr(name, "<assessmentItem/>")
    with pytest.raises(ImportFailed) as failed:
        run_import(db, clock, "qti.zip", archive.getvalue(), code="QTI", title="x",
                   kind="potensi")
    [refusal] = failed.value.problems
    assert refusal.key == "qti_manifest_missing"
    assert "item1.xml" in refusal.message and "no imsmanifest.xml" in refusal.message
    assert "tanpa imsmanifest.xml" in refusal.text("id")


def test_the_bank_page_takes_an_xlsx_bank(admin, database):
    token = csrf_from(admin.get("/admin/banks").text)
    page = admin.post("/admin/banks/upload",
                      data={"csrf_token": token, "code": "UJI-XLSX", "title": "Excel",
                            "kind": "potensi"},
                      files={"file": ("soal.xlsx", xlsx(BANK), "application/octet-stream")},
                      headers={"HX-Request": "true"})
    assert page.status_code == 200, page.text[-2000:]
    assert "UJI-XLSX" in page.text
    with database.transaction(write=False) as db:
        assert [code for code, *_ in bank_rows(db)] == ["X-1", "X-2"]
