"""The shipped samples: both banks satisfy the published schema and import; the QTI 3.0 sample
package is exactly what the server exports for those items and imports back unchanged; a QTI
upload with an unsupported item needs the admin's confirmation."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal

import jsonschema
import pytest
import yaml
from sqlalchemy import select

from app.bank.models import Item, ItemOption
from app.bank.parsed import ImportFailed
from app.bank.reading import ImportOptions, read_path
from app.bank.service import import_bank
from tests.conftest import csrf_from
from tests.sample_qti import QTI_DIR, SAMPLES, build_package, chosen_items

SCHEMA = json.loads((SAMPLES.parent / "schema" / "cact-itembank.schema.json").read_text())
TEXT_ENTRY = b"""<?xml version="1.0" encoding="UTF-8"?>
<qti-assessment-item xmlns="http://www.imsglobal.org/xsd/imsqtiasi_v3p0" identifier="TXT-1"
    title="Isian" adaptive="false" time-dependent="false">
  <qti-response-declaration identifier="RESPONSE" cardinality="single" base-type="string"/>
  <qti-item-body><p>Ibu kota Indonesia?</p>
    <qti-text-entry-interaction response-identifier="RESPONSE"/></qti-item-body>
</qti-assessment-item>"""


@pytest.mark.parametrize("folder", ["potensi", "kompetensi"])
def test_sample_banks_satisfy_the_schema_and_import(db, clock, folder):
    doc = yaml.safe_load((SAMPLES / folder / "bank.yaml").read_text())
    jsonschema.validate(doc, SCHEMA)
    outcome = import_bank(db, read_path(SAMPLES / folder), source=folder,
                          options=ImportOptions(), actor="test", actor_id=None, now=clock.now())
    assert outcome.item_count == len(doc["items"]) and outcome.created


def test_sample_counts_meet_the_brief():
    potensi = yaml.safe_load((SAMPLES / "potensi" / "bank.yaml").read_text())["items"]
    kompetensi = yaml.safe_load((SAMPLES / "kompetensi" / "bank.yaml").read_text())["items"]
    assert len(potensi) >= 60 and len({i["construct"] for i in potensi}) >= 4
    assert sum(1 for i in potensi if i["construct"] == "potensi.figural"
               and "<img" in i["stem"]) >= 10
    per_competency = {}
    for item in kompetensi:
        per_competency[item["construct"]] = per_competency.get(item["construct"], 0) + 1
        assert item["kind"] == "weighted"
    assert len(per_competency) == 9 and min(per_competency.values()) >= 5


def test_qti_sample_is_the_export_of_those_items():
    with zipfile.ZipFile(io.BytesIO(build_package())) as archive:
        exported = {name: archive.read(name) for name in archive.namelist()}
    committed = read_path(QTI_DIR)
    assert exported == committed, "regenerate with: .venv/bin/python -m tests.sample_qti"


def test_qti_sample_imports_back_with_the_same_items(db, clock):
    originals = {i.code: i for i in chosen_items()[0]}
    outcome = import_bank(db, read_path(QTI_DIR), source="qti", options=ImportOptions(
        code="CONTOH-QTI", title="Contoh QTI", kind="potensi"), actor="test", actor_id=None,
        now=clock.now())
    assert outcome.item_count == len(originals)
    for item in db.scalars(select(Item).where(Item.bank_version_id == outcome.version_id)):
        source = originals[item.code]
        expected_kind = "weighted" if source.kind == "likert" else source.kind
        assert (item.kind.value, item.construct) == (expected_kind, source.construct)
        options = db.scalars(select(ItemOption).where(ItemOption.item_id == item.id)
                             .order_by(ItemOption.position)).all()
        assert [o.label for o in options] == [o.ident for o in source.options]
        if item.kind.value == "single":
            assert [o.is_key for o in options] == [o.is_key for o in source.options]
        else:
            assert [o.weight for o in options] == [Decimal(o.weight) for o in source.options]
    figure = db.scalar(select(Item).where(Item.bank_version_id == outcome.version_id,
                                          Item.code == "FIG-001"))
    assert figure.media == ["fig-001.svg"]


def test_unsupported_qti_items_need_confirmation(db, clock):
    files = read_path(QTI_DIR)
    files["items/TXT-1.xml"] = TEXT_ENTRY
    manifest = files["imsmanifest.xml"].decode().replace(
        "</resources>", '<resource identifier="RES-TXT-1" type="imsqti_item_xmlv3p0" '
        'href="items/TXT-1.xml"><file href="items/TXT-1.xml"/></resource></resources>')
    files["imsmanifest.xml"] = manifest.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    upload = {"paket.zip": buffer.getvalue()}
    options = ImportOptions(code="CONTOH-QTI", title="Contoh QTI", kind="potensi",
                            default_construct="potensi.verbal")
    with pytest.raises(ImportFailed) as excinfo:
        import_bank(db, upload, source="paket.zip", options=options, actor="t", actor_id=None,
                    now=clock.now())
    assert any(p.item == "TXT-1" and "not supported" in p.message
               for p in excinfo.value.problems)
    assert db.scalar(select(Item)) is None
    options.skip_unsupported = True
    outcome = import_bank(db, upload, source="paket.zip", options=options, actor="t",
                          actor_id=None, now=clock.now())
    assert outcome.item_count == 6 and [p.item for p in outcome.skipped] == ["TXT-1"]


def test_qti_upload_page_shows_skipped_items(admin):
    client = admin
    token = csrf_from(client.get("/admin/banks").text)
    fields = {"csrf_token": token, "code": "SATU-QTI", "title": "Satu", "kind": "potensi",
              "default_construct": "potensi.verbal"}
    refused = client.post("/admin/banks/upload", data=fields,
                          files={"file": ("isian.xml", TEXT_ENTRY, "text/xml")})
    assert refused.status_code == 422 and "TXT-1" in refused.text
    kept = read_path(QTI_DIR)["items/VER-001.xml"]
    single = client.post("/admin/banks/upload", data=fields,
                         files={"file": ("ver.xml", kept, "text/xml")})
    assert single.status_code == 200 and "SATU-QTI versi 1 tersimpan: 1 butir" in single.text
