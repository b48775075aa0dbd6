"""The job standards leave the server in the format they come in: `cact standards export` and
the standards page's download give the CSV `cact standards import` reads, so a table exported
and imported into a fresh database is the same table (SQLite and PostgreSQL); the export is
audited and goes through the neutralising writer."""

from __future__ import annotations

import csv
import io
import shutil

from sqlalchemy import select

from app import audit
from app.db import Database
from app.scoring.imports import export_standards, parse_standards
from app.scoring.models import JobStandard
from app.scoring.standards import load_default_standards
from tests.integration.test_demo_and_cli import cact


def _table(database: Database) -> list[tuple[str, str, int]]:
    with database.transaction(write=False) as db:
        return sorted((s.job_key, s.competency, s.required_level)
                      for s in db.scalars(select(JobStandard)))


def _actions(database: Database, action: str) -> list[audit.AuditEvent]:
    with database.transaction(write=False) as db:
        return list(db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == action)))


def test_export_then_import_into_a_fresh_database_gives_the_same_rows(
        database, clock, tmp_path, sqlite_template):
    with database.transaction() as db:
        load_default_standards(db)
        changed = db.scalar(select(JobStandard).where(
            JobStandard.job_key == "fungsional:Ahli Muda", JobStandard.competency == "integritas"))
        changed.required_level = 5
        db.delete(db.scalar(select(JobStandard).where(
            JobStandard.job_key == "pelaksana", JobStandard.competency == "komunikasi")))
    expected = _table(database)
    assert len(expected) == 98

    out = tmp_path / "standar.csv"
    exported = cact(database.url, "standards", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "98 job standard row(s) written" in exported.stdout
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfjob_key,competency,required_level\r\n")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert ["fungsional:Ahli Muda", "integritas", "5"] in rows
    assert len(parse_standards(data, source="standar.csv")) == 98  # the importer reads it

    fresh_path = tmp_path / "fresh.sqlite3"
    shutil.copyfile(sqlite_template, fresh_path)
    fresh = Database(f"sqlite:///{fresh_path}")
    try:
        imported = cact(fresh.url, "standards", "import", str(out))
        assert imported.returncode == 0, imported.stderr
        assert "98 added, 0 changed, 0 unchanged" in imported.stdout
        assert _table(fresh) == expected
    finally:
        fresh.dispose()

    printed = cact(database.url, "standards", "export")  # no --out: standard output
    assert printed.returncode == 0
    assert printed.stdout.splitlines()[0] == "job_key,competency,required_level"
    assert len(printed.stdout.splitlines()) == 99
    events = _actions(database, "standards.export")
    assert [(e.actor, e.data["rows"]) for e in events] == [("cli", 98), ("cli", 98)]


def test_an_empty_table_exports_just_the_header(db, clock):
    data, count = export_standards(db, actor="cli", now=clock.now())
    assert count == 0 and data == b"\xef\xbb\xbfjob_key,competency,required_level\r\n"


def test_the_standards_page_links_the_same_download(admin, database):
    with database.transaction() as db:
        db.add(JobStandard(job_key="administrator", competency="integritas", required_level=4))
    page = admin.get("/admin/standards")
    assert 'href="/admin/standards/standar.csv"' in page.text
    response = admin.get("/admin/standards/standar.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="standar.csv"' in response.headers["content-disposition"]
    assert response.content.decode("utf-8-sig") == (
        "job_key,competency,required_level\r\nadministrator,integritas,4\r\n")
    [event] = _actions(database, "standards.export")
    assert event.actor == "user:admin" and event.data == {"rows": 1}
