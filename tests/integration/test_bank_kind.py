"""A bank is either potensi or kompetensi. Its kind decides how its items are scored (potensi
aspects, or JPM and category), so an item, a declared construct or a level rule of the other
kind is a located import error in every format, and a refused import stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from app.bank import formats
from app.bank.models import BankVersion, Item, ItemBank
from app.bank.parsed import ImportFailed
from app.bank.reading import ImportOptions, read_path
from app.bank.service import import_bank
from app.bank.validate import validate_bank
from tests.conftest import csrf_from
from tests.factories import SVG, bank_doc, bank_zip, run_import
from tests.sample_qti import QTI_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qti"
INTEGRITY = {"code": "INT-9", "kind": "weighted", "construct": "kompetensi.integritas",
             "stem": "<p>Atasan meminta Anda mengubah laporan. Anda …</p>",
             "options": [{"id": "A", "text": "menolak dan menjelaskan aturannya", "weight": 5},
                         {"id": "B", "text": "mengubahnya", "weight": 1}]}
CSV_HEADER = "code,kind,construct,stem,option_a,option_b,option_c,key,weight_a,weight_b,weight_c\n"


def upload(client, name: str, data: bytes):
    token = csrf_from(client.get("/admin/banks").text)
    return client.post("/admin/banks/upload", data={"csrf_token": token},
                       files={"file": (name, data, "application/octet-stream")},
                       headers={"HX-Request": "true"})


def counts(db) -> tuple[int, int, int]:
    return tuple(db.scalar(select(func.count()).select_from(model))
                 for model in (ItemBank, BankVersion, Item))


def refused(db, clock, name: str, data: bytes, **options):
    before = counts(db)
    with pytest.raises(ImportFailed) as excinfo:
        run_import(db, clock, name, data, **options)
    assert counts(db) == before, "a refused import must store nothing"
    return excinfo.value.problems


def line_of(text: str, needle: str) -> str:
    return f"line {next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)}"


def potensi_doc_with_integrity() -> dict:
    doc = bank_doc()
    doc["items"].append(INTEGRITY)
    return doc


def kompetensi_doc(**changes) -> dict:
    doc = bank_doc(bank={"code": "UJI-KOM", "title": "Bank uji kompetensi", "kind": "kompetensi"},
                   scoring={"levels": {"kompetensi.integritas": {
                       "scale": "percent", "cut_scores": [30, 50, 70, 85]}}},
                   items=[INTEGRITY])
    doc.update(changes)
    return doc


def test_a_kompetensi_item_in_a_potensi_yaml_bank_is_refused_where_it_is(db, clock):
    doc = potensi_doc_with_integrity()
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    problems = refused(db, clock, "uji.zip", bank_zip(doc))
    assert len(problems) == 1
    found = problems[0]
    assert (found.file, found.location, found.item, found.key) == \
        ("uji.zip:bank.yaml", line_of(text, "code: INT-9"), "INT-9", "item_construct_kind")
    assert found.text("id") == (
        "butir INT-9 berkonstruk kompetensi.integritas (kompetensi) di bank potensi: pindahkan "
        "ke bank kompetensi, atau ganti konstruknya dengan konstruk potensi")
    assert found.message == (
        "item INT-9 has construct kompetensi.integritas (kompetensi) in a potensi bank: move it "
        "to a kompetensi bank, or give it a potensi construct")


def test_a_potensi_item_in_a_kompetensi_bank_is_refused(db, clock):
    doc = kompetensi_doc()
    doc["items"] = [*bank_doc()["items"][2:3], INTEGRITY]  # EMO-1: potensi.kecerdasan_emosional
    problems = refused(db, clock, "uji.zip", bank_zip(doc, {}))
    assert [(p.item, p.key) for p in problems] == [("EMO-1", "item_construct_kind")]
    assert problems[0].location.startswith("line ")
    assert problems[0].text("id").startswith(
        "butir EMO-1 berkonstruk potensi.kecerdasan_emosional (potensi) di bank kompetensi: "
        "pindahkan ke bank potensi")


def test_declared_constructs_and_level_rules_follow_the_bank_kind(db, clock):
    doc = bank_doc(constructs={"potensi.literasi_digital": "Literasi digital",
                               "kompetensi.etika_digital": "Etika digital"})
    doc["scoring"]["levels"]["kompetensi.integritas"] = {"cut_scores": [1, 2, 3, 4]}
    problems = refused(db, clock, "uji.zip", bank_zip(doc))
    assert [(p.key, p.item) for p in problems] == [("construct_declared_kind", ""),
                                                    ("levels_construct_kind", "")]
    assert "'kompetensi.etika_digital'" in problems[0].message
    assert "scoring.levels.kompetensi.integritas" in problems[1].message
    assert "bank potensi" in problems[1].text("id")


def test_a_kompetensi_item_in_a_potensi_csv_bank_is_refused_by_row(db, clock):
    csv_text = (CSV_HEADER
                + "C-1,single,potensi.numerik,Berapa 2+2?,3,4,5,B,,,\n"
                + "C-2,weighted,kompetensi.integritas,Anda diminta menandatangani …,"
                  "Menolak,Menunda,Menandatangani,,5,3,1\n")
    problems = refused(db, clock, "soal.csv", csv_text.encode(), code="UJI-CSV", title="CSV",
                       kind="potensi")
    assert [(p.file, p.location, p.item, p.key) for p in problems] == \
        [("soal.csv", "row 3", "C-2", "item_construct_kind")]
    assert "di bank potensi" in problems[0].text("id")


def test_a_qti_default_construct_of_the_other_kind_is_refused(db, clock):
    data = (FIXTURES / "qti21_single.xml").read_bytes()
    problems = refused(db, clock, "soal.xml", data, code="UJI-QTI", title="QTI", kind="potensi",
                       default_construct="kompetensi.integritas")
    assert [(p.item, p.key) for p in problems] == [("NUM-001", "item_construct_kind")]
    assert problems[0].file == "soal.xml"


def test_qti_manifest_constructs_of_the_other_kind_are_refused(db, clock):
    files = read_path(QTI_DIR)  # the sample package: potensi items, by manifest keyword
    before = counts(db)
    with pytest.raises(ImportFailed) as excinfo:
        import_bank(db, files, source="qti", options=ImportOptions(
            code="UJI-QTI", title="QTI", kind="kompetensi"), actor="test", actor_id=None,
            now=clock.now())
    assert counts(db) == before
    wrong = excinfo.value.problems
    items = sorted(name.rsplit("/", 1)[1][:-4] for name in files
                   if name.startswith("items/") and name.endswith(".xml"))
    assert sorted(p.item for p in wrong) == items
    assert {p.key for p in wrong} == {"item_construct_kind"}


def test_the_upload_page_refuses_a_mixed_bank_in_indonesian(admin, database):
    bad = upload(admin, "uji.zip", bank_zip(potensi_doc_with_integrity()))
    assert bad.status_code == 422 and 'data-testid="problem-table"' in bad.text
    assert "INT-9" in bad.text
    assert ("butir INT-9 berkonstruk kompetensi.integritas (kompetensi) di bank potensi: "
            "pindahkan ke bank kompetensi") in bad.text
    with database.transaction(write=False) as s:
        assert s.scalar(select(func.count()).select_from(ItemBank)) == 0
        assert s.scalar(select(Item)) is None
    good = upload(admin, "uji.zip", bank_zip())
    assert good.status_code == 200 and "UJI-POT versi 1 tersimpan: 5 butir" in good.text


def test_a_correct_bank_of_each_kind_still_imports(db, clock):
    potensi = run_import(db, clock, "uji.zip", bank_zip())
    kompetensi = run_import(db, clock, "kom.zip", bank_zip(kompetensi_doc(
        constructs={"kompetensi.etika_digital": "Etika digital"}), {}))
    assert (potensi.item_count, kompetensi.item_count) == (5, 1)
    banks = dict(db.execute(select(ItemBank.code, ItemBank.kind)).all())
    assert {code: kind.value for code, kind in banks.items()} == \
        {"UJI-POT": "potensi", "UJI-KOM": "kompetensi"}
    constructs = {c for c, in db.execute(select(Item.construct).join(BankVersion).join(ItemBank)
                                         .where(ItemBank.code == "UJI-KOM"))}
    assert constructs == {"kompetensi.integritas"}


def test_suggestions_for_an_unknown_construct_stay_in_the_bank_kind():
    doc = bank_doc()
    doc["items"][0]["construct"] = "potensi.integritas"  # closest overall: kompetensi.integritas
    bank, problems = formats.parse_bank_file(yaml.safe_dump(doc), source="uji.yaml")
    assert not problems
    bank.media = {"fig1.svg": SVG}
    found = validate_bank(bank)
    assert [(p.item, p.key) for p in found] == [("NUM-1", "item_construct")]
    assert "did you mean 'potensi." in found[0].message
    assert "kompetensi" not in found[0].message
