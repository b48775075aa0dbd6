"""Item bank import: formats, located errors that leave the database unchanged, sanitizing,
versions and checksums, export round trip, frozen versions and audited key corrections."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal

import pytest
import yaml
from sqlalchemy import func, select

from app import audit
from app.bank.export import export_version_zip
from app.bank.models import BankMedia, BankVersion, Item, ItemBank, ItemOption, KeyCorrection
from app.bank.parsed import ImportFailed
from app.bank.service import FrozenVersionError, freeze_versions
from app.models import Base
from app.scoring.corrections import correct_key
from tests.factories import SVG, bank_doc, bank_zip, run_import, zip_of


def row_counts(db) -> dict[str, int]:
    return {t.name: db.scalar(select(func.count()).select_from(t))
            for t in Base.metadata.sorted_tables}


def test_yaml_zip_with_media_imports_every_kind(db, clock):
    outcome = run_import(db, clock, "uji.zip", bank_zip())
    assert (outcome.bank_code, outcome.version, outcome.created, outcome.item_count) == \
        ("UJI-POT", 1, True, 5)
    items = {i.code: i for i in db.scalars(select(Item))}
    assert {i.kind.value for i in items.values()} == {"single", "weighted", "multiple", "likert"}
    assert items["NUM-1"].irt_a == 1.2 and items["NUM-1"].level == 2
    assert items["FIG-1"].media == ["fig1.svg"]
    assert items["LIK-1"].scoring == {"reverse": True}
    assert items["MUL-1"].scoring == {"min": 0.0, "max": 5.0}
    likert = db.scalars(select(ItemOption).where(ItemOption.item_id == items["LIK-1"].id)
                        .order_by(ItemOption.position)).all()
    assert [o.weight for o in likert] == [Decimal(n) for n in range(1, 6)]
    media = db.scalar(select(BankMedia))
    assert media.name == "fig1.svg" and media.mime_type == "image/svg+xml" and media.data == SVG
    version = db.scalar(select(BankVersion))
    assert version.scoring_rules["levels"]["potensi.numerik"]["norm_table"][1] == \
        {"min_raw": 5, "level": 2}
    assert len(version.checksum) == 64 and not version.frozen
    assert db.scalar(select(audit.AuditEvent.action)) == "bank.import"


def test_plain_json_file_imports(db, clock):
    doc = bank_doc()
    doc["items"] = [i for i in doc["items"] if i["code"] != "FIG-1"]
    outcome = run_import(db, clock, "uji.json", json.dumps(doc).encode())
    assert outcome.item_count == 4


def test_csv_with_image_in_zip(db, clock):
    csv_text = (
        "code,kind,construct,level,stem,image,option_a,option_b,option_c,key,"
        "weight_a,weight_b,weight_c,tags\n"
        "C-1,single,potensi.numerik,1,Berapa 2+2?,,3,4,5,B,,,,hitung\n"
        'C-2,weighted,potensi.interpersonal,,"Anda diminta, secara halus, menandatangani",,'
        "Menolak,Menunda,Menandatangani,,5,3,1,\n"
        "C-3,single,potensi.figural,2,Gambar berikutnya?,fig1.svg,A,B,,A,,,,\n"
    )
    data = zip_of({"soal.csv": csv_text.encode(), "media/fig1.svg": SVG})
    outcome = run_import(db, clock, "soal.zip", data, code="UJI-CSV", title="CSV", kind="potensi")
    assert outcome.item_count == 3
    items = {i.code: i for i in db.scalars(select(Item))}
    assert items["C-2"].stem == "<p>Anda diminta, secara halus, menandatangani</p>"
    assert items["C-3"].media == ["fig1.svg"]
    weights = [o.weight for o in db.scalars(select(ItemOption).where(
        ItemOption.item_id == items["C-2"].id).order_by(ItemOption.position))]
    assert weights == [Decimal(5), Decimal(3), Decimal(1)]


def test_csv_errors_name_row_and_column(db, clock):
    csv_text = ("code,kind,construct,stem,option_a,option_b,key,weight_a,weight_b\n"
                "C-1,single,potensi.numerik,Soal,1,2,E,,\n"
                "C-2,weighted,potensi.numerik,Soal,x,y,,5,lima\n")
    with pytest.raises(ImportFailed) as excinfo:
        run_import(db, clock, "soal.csv", csv_text.encode(), code="UJI", title="x",
                   kind="potensi")
    where = {(p.location, p.item) for p in excinfo.value.problems}
    assert ("row 2, column key", "C-1") in where
    assert ("row 3, column weight_b", "C-2") in where


def problems_for(db, clock, doc=None, media=None, name="uji.zip", data=None):
    before = row_counts(db)
    with pytest.raises(ImportFailed) as excinfo:
        run_import(db, clock, name, data if data is not None else bank_zip(doc, media))
    assert row_counts(db) == before, "a failed import must change nothing"
    return excinfo.value.problems


def broken(mutate) -> dict:
    doc = bank_doc()
    mutate(doc)
    return doc


@pytest.mark.parametrize(("mutate", "item", "needle"), [
    (lambda d: d["items"][1].update(code="NUM-1"), "NUM-1", "used twice"),
    (lambda d: d["items"][0]["options"][1].pop("key"), "NUM-1", "key is missing"),
    (lambda d: d["items"][2]["options"][0].pop("weight"), "EMO-1", "weight on every option"),
    (lambda d: d["items"][0].update(construct="potensi.numerk"), "NUM-1",
     "did you mean 'potensi.numerik'"),
    (lambda d: d["items"][0].update(level=7), "NUM-1", "between 1 and 5"),
    (lambda d: d["items"][0].update(stem="<p> </p>"), "NUM-1", "stem is empty"),
    (lambda d: d["items"][1].update(stem='<img src="media/nope.png">'), "",
     "'media/nope.png' is referenced but not in the upload"),
    (lambda d: d["items"][0].update(stem='<p><img src="http://x.example/a.png"></p>'), "NUM-1",
     "no web addresses"),
    (lambda d: d["items"][0]["options"][0].update(wieght=3), "NUM-1", "did you mean 'weight'"),
])
def test_each_error_is_located_and_changes_nothing(db, clock, mutate, item, needle):
    problems = problems_for(db, clock, broken(mutate))
    match = [p for p in problems if needle in p.message]
    assert match, [str(p) for p in problems]
    assert match[0].item == item
    assert match[0].file.startswith("uji.zip")
    if item:
        assert match[0].location.startswith("line ")


def test_all_errors_are_reported_at_once(db, clock):
    def many(d):
        d["items"][0]["options"][1].pop("key")
        d["items"][2]["options"][0].pop("weight")
        d["items"][3]["construct"] = "potensi.nothing"
        d["items"][4]["level"] = 0
    problems = problems_for(db, clock, broken(many))
    assert {p.item for p in problems} >= {"NUM-1", "EMO-1", "MUL-1", "LIK-1"}


def test_yaml_syntax_error_names_the_line(db, clock):
    text = b"format: cact-itembank/1\nbank:\n  code: X\n items: [\n"
    problems = problems_for(db, clock, name="rusak.yaml", data=text)
    assert problems[0].file == "rusak.yaml" and problems[0].location.startswith("line ")


def test_unsafe_archives_are_refused(db, clock):
    traversal = zip_of({"bank.yaml": b"x", "../../etc/evil.svg": SVG})
    problems = problems_for(db, clock, data=traversal)
    assert any("leaves the archive" in p.message for p in problems)
    bomb = zip_of({"bank.yaml": b"a" * 5_000_000})
    problems = problems_for(db, clock, data=bomb)
    assert any("zip bomb" in p.message for p in problems)


def test_oversized_upload_is_refused(db, clock):
    problems = problems_for(db, clock, name="big.yaml", data=b"#" * (50 * 1024 * 1024 + 1))
    assert "larger than 50 MB" in problems[0].message


def test_svg_with_script_is_refused(db, clock):
    evil = SVG.replace(b"<rect", b'<script>alert(1)</script><rect onload="x()"')
    problems = problems_for(db, clock, media={"fig1.svg": evil})
    assert any("media/fig1.svg" in p.message and "script" in p.message for p in problems)


def test_item_html_is_sanitized(db, clock):
    doc = bank_doc()
    doc["items"][0]["stem"] = ('<p onclick="steal()">2, 4, 6 <script>alert(document.cookie)'
                               '</script><a href="javascript:x">lihat</a><style>p{}</style></p>')
    doc["items"][0]["options"][0]["text"] = '<img src="media/fig1.svg" onerror="x()">7'
    run_import(db, clock, "uji.zip", bank_zip(doc))
    item = db.scalar(select(Item).where(Item.code == "NUM-1"))
    assert item.stem == "<p>2, 4, 6 lihat</p>"
    option = db.scalar(select(ItemOption).where(ItemOption.item_id == item.id,
                                                ItemOption.position == 0))
    assert option.content == '<img src="media/fig1.svg">7'


def test_versions_and_checksums(db, clock):
    first = run_import(db, clock, "uji.zip", bank_zip())
    again = run_import(db, clock, "uji-lagi.zip", bank_zip())
    assert again.created is False and again.version == 1 and again.version_id == first.version_id
    changed = bank_doc()
    changed["items"][0]["stem"] = "<p>2, 4, 6, 8, …</p>"
    second = run_import(db, clock, "uji-v2.zip", bank_zip(changed))
    assert second.created and second.version == 2
    assert db.scalar(select(func.count()).select_from(BankVersion)) == 2
    assert db.scalar(select(func.count()).select_from(Item)) == 10
    # A well-formed kompetensi bank under the potensi bank's code: only the code is wrong.
    wrong_kind = bank_doc(bank={"code": "UJI-POT", "title": "x", "kind": "kompetensi"},
                          scoring={}, items=[{
                              "code": "INT-1", "kind": "weighted",
                              "construct": "kompetensi.integritas", "stem": "<p>Anda …</p>",
                              "options": [{"id": "A", "text": "menolak", "weight": 5},
                                          {"id": "B", "text": "menerima", "weight": 1}]}])
    problems = problems_for(db, clock, wrong_kind)
    assert "already exists as a potensi bank" in problems[0].message


def test_export_then_import_is_identity(db, clock):
    outcome = run_import(db, clock, "uji.zip", bank_zip())
    version = db.get(BankVersion, outcome.version_id)
    exported = export_version_zip(db, version)
    same = run_import(db, clock, "ekspor.zip", exported)
    assert same.created is False and same.version_id == version.id  # identical content
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        doc = yaml.safe_load(archive.read("bank.yaml"))
        media = {n: archive.read(n) for n in archive.namelist() if n.startswith("media/")}
    doc["bank"]["code"] = "UJI-SALIN"
    copy = run_import(db, clock, "salin.zip", bank_zip(doc, {k[6:]: v for k, v in media.items()}))

    def snapshot(version_id):
        rows = []
        for item in db.scalars(select(Item).where(Item.bank_version_id == version_id)
                               .order_by(Item.code)):
            options = db.scalars(select(ItemOption).where(ItemOption.item_id == item.id)
                                 .order_by(ItemOption.position))
            rows.append((item.code, item.kind, item.construct, item.level, item.stem,
                         item.media, item.irt_a, item.irt_b, item.irt_c, item.scoring,
                         item.tags, [(o.label, o.content, o.is_key, o.weight, o.level)
                                     for o in options]))
        return rows

    assert snapshot(copy.version_id) == snapshot(version.id)
    assert db.get(BankVersion, copy.version_id).scoring_rules == version.scoring_rules


def test_frozen_version_refuses_edits_but_takes_audited_key_corrections(db, clock):
    outcome = run_import(db, clock, "uji.zip", bank_zip())
    freeze_versions(db, [outcome.version_id])
    db.flush()
    item = db.scalar(select(Item).where(Item.code == "NUM-1"))
    item.stem = "<p>diubah</p>"
    with pytest.raises(FrozenVersionError):
        db.flush()
    db.rollback()

    db2_outcome = run_import(db, clock, "uji.zip", bank_zip())
    freeze_versions(db, [db2_outcome.version_id])
    db.flush()
    item = db.scalar(select(Item).where(Item.code == "NUM-1"))
    option = db.scalar(select(ItemOption).where(ItemOption.item_id == item.id))
    option.content = "diubah"
    with pytest.raises(FrozenVersionError):
        db.flush()
    db.rollback()

    outcome = run_import(db, clock, "uji.zip", bank_zip())
    freeze_versions(db, [outcome.version_id])
    item = db.scalar(select(Item).where(Item.code == "NUM-1"))
    with pytest.raises(ValueError, match="reason"):
        correct_key(db, item=item, key="A", reason=" ", actor="user:admin", actor_id=None,
                    now=clock.now())
    correction = correct_key(db, item=item, key="A", reason="kunci tertukar saat penulisan",
                             actor="user:admin", actor_id=None, now=clock.now())
    assert correction.old_key == {"key": "B"} and correction.new_key == {"key": "A"}
    assert db.get(BankVersion, outcome.version_id).key_revision == 1
    keyed = db.scalars(select(ItemOption.label).where(ItemOption.item_id == item.id,
                                                      ItemOption.is_key)).all()
    assert keyed == ["A"]
    weighted = db.scalar(select(Item).where(Item.code == "EMO-1"))
    correct_key(db, item=weighted, weights={"A": Decimal(4), "B": Decimal(2)},
                reason="bobot ditinjau panel", actor="user:admin", actor_id=None,
                now=clock.now())
    assert db.get(BankVersion, outcome.version_id).key_revision == 2
    assert db.scalar(select(func.count()).select_from(KeyCorrection)) == 2
    event = db.scalars(select(audit.AuditEvent).where(
        audit.AuditEvent.action == "bank.key_correction")).first()
    assert event.reason == "kunci tertukar saat penulisan"
    assert event.data["old"] == {"key": "B"} and event.target == "item:UJI-POT/v1/NUM-1"


def test_bank_listing_counts(db, clock):
    run_import(db, clock, "uji.zip", bank_zip())
    assert db.scalar(select(ItemBank.title)) == "Bank uji"
