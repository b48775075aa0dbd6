"""QTI items that cannot be scored: a survey (Likert) item with no response processing, no
correct response and no mapping is an unsupported item, so 'skip unsupported items' leaves it
out; a package where nothing is left is refused with a located message (no database error),
from the service, the CLI and the upload page; nothing is stored by a refusal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.bank.models import BankVersion, Item
from app.bank.parsed import ImportFailed
from tests.factories import run_import, zip_of
from tests.integration.test_demo_and_cli import cact

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qti"
SINGLE = (FIXTURES / "qti21_single.xml").read_bytes()
# The same item as a survey question: no key, no processing, no mapping.
SURVEY = re.sub(rb"<correctResponse>.*?</correctResponse>", b"", SINGLE, flags=re.S) \
    .replace(b'<responseProcessing template="http://www.imsglobal.org/question/qti_v2p1/'
             b'rptemplates/match_correct"/>', b"").replace(b'identifier="NUM-001"',
                                                            b'identifier="SURVEI-1"')


def manifest(*names: str) -> bytes:
    """A content package manifest listing these QTI 2.1 item files."""
    resources = "".join(
        f'<resource identifier="R{n}" type="imsqti_item_xmlv2p1" href="{name}">'
        f'<file href="{name}"/></resource>' for n, name in enumerate(names))
    return (b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<manifest xmlns="http://www.imsglobal.org/xsd/imscp_v1p1" identifier="M">'
            b"<organizations/><resources>" + resources.encode() + b"</resources></manifest>")


def package(**items: bytes) -> bytes:
    return zip_of({"imsmanifest.xml": manifest(*items), **items})


OPTIONS = {"code": "QTI-UJI", "title": "QTI uji", "kind": "potensi",
           "default_construct": "potensi.numerik"}


def counts(db) -> tuple[int, int]:
    return (db.scalar(select(func.count()).select_from(BankVersion)),
            db.scalar(select(func.count()).select_from(Item)))


def test_a_survey_item_is_unsupported_and_can_be_skipped(db, clock):
    assert b"correctResponse" not in SURVEY and b"responseProcessing" not in SURVEY
    with pytest.raises(ImportFailed) as refused:
        run_import(db, clock, "paket.zip", package(**{"a.xml": SINGLE, "survei.xml": SURVEY}),
                   **OPTIONS)
    [only] = refused.value.problems
    assert (only.file, only.item) == ("paket.zip:survei.xml", "SURVEI-1")
    assert "without response processing, correct response or score mapping" in only.message
    assert "skip unsupported items" in only.message  # how to import the rest
    assert counts(db) == (0, 0)

    outcome = run_import(db, clock, "paket.zip", package(**{"a.xml": SINGLE, "survei.xml": SURVEY}),
                         skip_unsupported=True, **OPTIONS)
    assert outcome.item_count == 1 and [p.item for p in outcome.skipped] == ["SURVEI-1"]
    assert counts(db) == (1, 1)


def test_nothing_left_after_skipping_is_a_located_refusal(db, clock):
    with pytest.raises(ImportFailed) as refused:
        run_import(db, clock, "survei.zip", package(**{"survei.xml": SURVEY}),
                   skip_unsupported=True, **OPTIONS)
    [only] = refused.value.problems
    assert only.file == "survei.zip"
    assert "no item can be imported (1 left out as unsupported)" in only.message
    assert counts(db) == (0, 0)


def test_cli_and_upload_page_refuse_it_without_an_error(database, admin, tmp_path, settings):
    upload = tmp_path / "survei.zip"
    upload.write_bytes(package(**{"survei.xml": SURVEY}))
    done = cact(database.url, "bank", "import", str(upload), "--code", "QTI-UJI", "--title",
                "QTI uji", "--kind", "potensi", "--construct", "potensi.numerik",
                "--skip-unsupported",
                extra_env={"CACT_SECRET_KEY": settings.resolved_secret()})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "tidak ada butir yang dapat diimpor" in \
        done.stdout + done.stderr

    page = admin.get("/admin/banks")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = admin.post("/admin/banks/upload", data={
        "csrf_token": token, "code": "QTI-UJI", "title": "QTI uji", "kind": "potensi",
        "default_construct": "potensi.numerik", "skip_unsupported": "true"},
        files={"file": ("survei.zip", upload.read_bytes(), "application/zip")})
    assert answer.status_code == 422
    assert "tidak ada butir yang dapat diimpor (1 dilewati" in answer.text
    with database.transaction(write=False) as db:
        assert counts(db) == (0, 0)
