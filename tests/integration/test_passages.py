"""Reading passages: one text several items are asked about. A CACT bank declares them under
``passages`` and items name theirs; a QTI package brings them as a shared stimulus
(``qti-assessment-stimulus-ref``) or an embedded HTML page (``<object type="text/html">``).
Either way the passage is stored once per version, reaches the taker beside each of its
items, keeps its images, and comes back out of an export. Audio and video are refused by
name. Every refusal is located and stores nothing."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import yaml
from sqlalchemy import func, select

from app.bank.archive import unpack_zip
from app.bank.export import export_version_zip
from app.bank.models import BankPassage, BankVersion, Item, ItemBank
from app.bank.parsed import ImportFailed
from app.bank.qti import export_qti3_package
from app.bank.reading import ImportOptions, read_bank
from app.delivery import attempts, content, timing
from app.delivery.models import AttemptItem
from app.delivery.views import attempt_json, attempt_view
from tests.factories import SVG, make_open_session, run_import, zip_of

SECRET = "p" * 40
STORY = ("<p>Anina melihat seekor buaya keluar dari bawah meja telepon.</p>"
         '<p><img src="media/buaya.svg" alt="buaya"></p>')


def reading_doc(**changes) -> dict:
    doc = {
        "format": "cact-itembank/1",
        "bank": {"code": "BACA-1", "title": "Pemahaman bacaan", "kind": "potensi"},
        "passages": [{"code": "KISAH-1", "title": "Malam yang aneh", "text": STORY}],
        "items": [
            {"code": f"V{n}", "kind": "single", "construct": "potensi.verbal",
             "passage": "KISAH-1" if n <= 3 else None,
             "stem": f"<p>Pertanyaan {n} tentang bacaan?</p>",
             "options": [{"id": "A", "text": "ya", "key": True}, {"id": "B", "text": "tidak"}]}
            for n in range(1, 7)
        ],
    }
    for item in doc["items"]:
        if item["passage"] is None:
            del item["passage"]
    doc.update(changes)
    return doc


def reading_zip(doc: dict | None = None) -> bytes:
    text = yaml.safe_dump(doc or reading_doc(), allow_unicode=True, sort_keys=False)
    return zip_of({"bank.yaml": text.encode(), "media/buaya.svg": SVG})


def counts(db) -> tuple[int, ...]:
    return tuple(db.scalar(select(func.count()).select_from(m))
                 for m in (ItemBank, BankVersion, Item, BankPassage))


def refused(db, clock, name: str, data: bytes, **options) -> list:
    before = counts(db)
    with pytest.raises(ImportFailed) as excinfo:
        run_import(db, clock, name, data, **options)
    assert counts(db) == before, "a refused import must store nothing"
    return excinfo.value.problems


def test_a_passage_is_stored_once_and_named_by_its_items(db, clock):
    outcome = run_import(db, clock, "baca.zip", reading_zip())
    [passage] = db.scalars(select(BankPassage)).all()
    assert (passage.bank_version_id, passage.code, passage.title) == \
        (outcome.version_id, "KISAH-1", "Malam yang aneh")
    assert "Anina melihat seekor buaya" in passage.content
    items = {i.code: i for i in db.scalars(select(Item))}
    assert [items[f"V{n}"].passage for n in range(1, 7)] == ["KISAH-1"] * 3 + [None] * 3
    # The passage's image belongs to its items: the media list says what they show.
    assert items["V1"].media == ["buaya.svg"] and items["V4"].media == []


def test_the_published_schema_describes_passages():
    import jsonschema

    from tests.integration.test_samples_and_qti import SCHEMA

    jsonschema.validate(reading_doc(), SCHEMA)
    bad = reading_doc()
    bad["passages"][0]["author"] = "Franz"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_the_export_carries_the_passage_and_reads_back_as_the_same_version(db, clock):
    first = run_import(db, clock, "baca.zip", reading_zip())
    exported = export_version_zip(db, db.get_one(BankVersion, first.version_id))
    document = yaml.safe_load(zipfile.ZipFile(io.BytesIO(exported)).read("bank.yaml"))
    assert document["passages"] == [{"code": "KISAH-1", "title": "Malam yang aneh",
                                     "text": STORY}]
    assert [i.get("passage") for i in document["items"]] == ["KISAH-1"] * 3 + [None] * 3
    again = run_import(db, clock, "ekspor.zip", exported)
    assert (again.created, again.version) == (False, first.version)


def test_a_changed_passage_is_a_new_version(db, clock):
    first = run_import(db, clock, "baca.zip", reading_zip())
    doc = reading_doc()
    doc["passages"][0]["text"] = STORY.replace("seekor", "dua ekor")
    second = run_import(db, clock, "baca2.zip", reading_zip(doc))
    assert second.created and second.version == first.version + 1


@pytest.mark.parametrize("change, key, where", [
    (lambda d: d["items"][0].update(passage="KISAH-9"), "item_passage_unknown", "V1"),
    (lambda d: d["passages"].append(dict(d["passages"][0])), "passage_code_twice", ""),
    (lambda d: d["passages"][0].update(text="<p> </p>"), "passage_empty", ""),
    (lambda d: d["passages"][0].update(text='<p><img src="http://x/y.png"></p>'),
     "passage_image_source", ""),
    (lambda d: d["passages"][0].update(author="Franz"), "unknown_field_allowed", ""),
    (lambda d: d.update(passages={"KISAH-1": STORY}), "passages_not_list", ""),
])
def test_a_broken_passage_is_a_located_refusal(db, clock, change, key, where):
    doc = reading_doc()
    change(doc)
    problems = refused(db, clock, "baca.zip", reading_zip(doc))
    found = [p for p in problems if p.key == key]
    assert found, [str(p) for p in problems]
    assert found[0].item == where
    assert found[0].location.startswith("line ")
    assert "KISAH" in str(found[0]) or key in ("passages_not_list", "passage_image_source",
                                               "unknown_field_allowed")


def test_a_shared_stimulus_package_imports_with_its_passage(db, clock):
    """A QTI 3 package whose items refer to one qti-assessment-stimulus, written here by the
    project's own exporter from a bank read from YAML."""
    bank = read_bank(unpack_zip(reading_zip(), source="b.zip").files, source="b.zip",
                     options=ImportOptions())
    package = export_qti3_package(bank.items, bank.media, title="Bacaan",
                                  passages=bank.passages)
    names = zipfile.ZipFile(io.BytesIO(package)).namelist()
    assert "items/passages/P-KISAH-1.xml" in names
    outcome = run_import(db, clock, "bacaan-qti.zip", package, code="QTI-BACA", title="Bacaan",
                         kind="potensi", default_construct="potensi.verbal")
    assert outcome.item_count == 6
    [passage] = db.scalars(select(BankPassage)).all()
    assert passage.code == "KISAH-1" and passage.title == "Malam yang aneh"
    assert "Anina melihat seekor buaya" in passage.content
    assert 'src="media/buaya.svg"' in passage.content  # the image came along, as bank media
    shared = db.scalars(select(Item.code).where(Item.passage == "KISAH-1")).all()
    assert sorted(shared) == ["V1", "V2", "V3"]


def test_a_passage_image_missing_from_the_package_is_reported_once(db, clock):
    bank = read_bank(unpack_zip(reading_zip(), source="b.zip").files, source="b.zip",
                     options=ImportOptions())
    files = unpack_zip(export_qti3_package(bank.items, bank.media, title="Bacaan",
                                           passages=bank.passages), source="q.zip").files
    del files["items/media/buaya.svg"]
    problems = refused(db, clock, "bacaan-qti.zip", zip_of(files), code="QTI-BACA",
                       title="Bacaan", kind="potensi", default_construct="potensi.verbal")
    assert [p.key for p in problems] == ["qti_image_missing"]
    assert problems[0].file.endswith("items/passages/P-KISAH-1.xml")


QTI22 = """<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p2" identifier="{code}"
    title="{code}" adaptive="false" timeDependent="false">
  <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="identifier">
    <correctResponse><value>A</value></correctResponse>
  </responseDeclaration>
  <outcomeDeclaration identifier="SCORE" cardinality="single" baseType="float"/>
  <itemBody>
    <div class="rightpane">{embed}</div>
    <div class="leftpane"><p>{question}</p>
      <choiceInteraction responseIdentifier="RESPONSE" shuffle="false" maxChoices="1">
        <simpleChoice identifier="A">benar</simpleChoice>
        <simpleChoice identifier="B">salah</simpleChoice>
      </choiceInteraction>
    </div>
  </itemBody>
  <responseProcessing
    template="http://www.imsglobal.org/question/qti_v2p2/rptemplates/match_correct"/>
</assessmentItem>
"""
# An old authoring tool's page: Windows-1252 (the pound sign is one byte), unclosed <p>.
PAGE = ("<html><head><title>Pulau Orkney</title></head><body><h1>Pulau Orkney</h1>"
        "<p>Tujuh puluh pulau di utara Skotlandia. Menginap dari \u00a3199.<p>Kapal feri "
        "berangkat setiap hari.</body></html>").encode("cp1252")


def manifest(*items: str) -> bytes:
    resources = "".join(
        f'<resource identifier="R{n}" type="imsqti_item_xmlv2p2" href="{href}">'
        f'<file href="{href}"/></resource>' for n, href in enumerate(items))
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<manifest xmlns="http://www.imsglobal.org/xsd/imscp_v1p1" identifier="M">'
            f"<organizations/><resources>{resources}</resources></manifest>").encode()


def test_an_embedded_html_page_is_one_passage_for_its_items(db, clock):
    embed = '<object type="text/html" data="shared/orkney.html"/>'
    files = {
        "orkney1.xml": QTI22.format(code="ORK-1", embed=embed,
                                    question="Ada tujuh puluh pulau.").encode(),
        "orkney2.xml": QTI22.format(code="ORK-2", embed=embed,
                                    question="Tidak ada kapal feri.").encode(),
        "shared/orkney.html": PAGE,
        "imsmanifest.xml": manifest("orkney1.xml", "orkney2.xml"),
    }
    run_import(db, clock, "orkney.zip", zip_of(files), code="ORKNEY", title="Orkney",
               kind="potensi", default_construct="potensi.verbal")
    [passage] = db.scalars(select(BankPassage)).all()
    assert passage.title == "Pulau Orkney"
    assert "\u00a3199" in passage.content and "Kapal feri" in passage.content
    assert "<title>" not in passage.content
    items = db.scalars(select(Item).order_by(Item.code)).all()
    assert [(i.code, i.passage) for i in items] == [("ORK-1", passage.code),
                                                    ("ORK-2", passage.code)]
    assert "orkney.html" not in items[0].stem and "Ada tujuh puluh pulau" in items[0].stem


def test_a_missing_passage_file_is_located(db, clock):
    files = {"orkney1.xml": QTI22.format(
        code="ORK-1", embed='<object type="text/html" data="shared/hilang.html"/>',
        question="Ada tujuh puluh pulau.").encode(),
        "imsmanifest.xml": manifest("orkney1.xml")}
    problems = refused(db, clock, "orkney.zip", zip_of(files), code="ORKNEY", title="Orkney",
                       kind="potensi", default_construct="potensi.verbal")
    [missing] = [p for p in problems if p.key == "qti_passage_missing"]
    assert missing.item == "ORK-1" and missing.location.endswith("/object")
    assert "shared/hilang.html" in str(missing)


def test_audio_and_video_are_refused_by_name_and_can_be_skipped(db, clock):
    video = ('<video width="320" controls="controls"><source src="klip.mp4" '
             'type="video/mp4"/></video>')
    files = {
        "film.xml": QTI22.format(code="FILM-1", embed=video, question="Berapa orang?").encode(),
        "teks.xml": QTI22.format(code="TEKS-1", embed="<p>Teks.</p>",
                                 question="Benar?").encode(),
        "imsmanifest.xml": manifest("film.xml", "teks.xml"),
    }
    options = {"code": "MEDIA", "title": "Media", "kind": "potensi",
               "default_construct": "potensi.verbal"}
    problems = refused(db, clock, "media.zip", zip_of(files), **options)
    [video_problem] = [p for p in problems if p.item == "FILM-1"]
    assert "video" in str(video_problem) and video_problem.location.endswith("/video")
    outcome = run_import(db, clock, "media.zip", zip_of(files), skip_unsupported=True,
                         **options)
    assert outcome.item_count == 1 and [p.item for p in outcome.skipped] == ["FILM-1"]


BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Bacaan
sections:
  - title: Verbal
    time_limit_minutes: 20
    picks:
      - {bank: BACA-1, construct: potensi.verbal, count: 6}
"""


def _login(db, clock, nip, token):
    attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-2:]}",
                             client_addr="10.0.0.2", secret=SECRET, now=clock.now()).attempt
    timing.start(db, attempt=attempt, now=clock.now())
    return attempt


def test_the_taker_gets_the_passage_with_each_of_its_items_kept_together(db, clock):
    run_import(db, clock, "baca.zip", reading_zip())
    _, logins = make_open_session(db, clock, secret=SECRET, participants=12, code="BACA",
                                  blueprint_yaml=BLUEPRINT)
    passage_ids = set(db.scalars(select(Item.id).where(Item.passage == "KISAH-1")))
    orders = set()
    for nip, token in logins:
        attempt = _login(db, clock, nip, token)
        form = db.scalars(select(AttemptItem.item_id).where(AttemptItem.attempt_id == attempt.id)
                          .order_by(AttemptItem.position)).all()
        places = [n for n, item_id in enumerate(form) if item_id in passage_ids]
        assert places == list(range(places[0], places[0] + 3)), form  # one after another
        assert [form[n] for n in places] == sorted(passage_ids)  # in the bank's order
        orders.add(tuple(form))
        view = json.loads(attempt_json(attempt_view(db, attempt=attempt, now=clock.now())))
        for item in view["items"]:
            if item["item_id"] in passage_ids:
                assert item["passage_title"] == "Malam yang aneh"
                assert "Anina melihat seekor buaya" in item["passage"]
            else:
                assert item["passage"] is None
        # The passage's image may be fetched by this taker: their form shows it.
        version_id = db.scalar(select(Item.bank_version_id).where(Item.code == "V1"))
        assert content.form_shows_media(db, attempt=attempt, version_id=version_id,
                                        name="buaya.svg")
    assert len(orders) > 1, "items are still shuffled around the passage group"


def test_keep_passages_false_lets_the_items_scatter(db, clock):
    run_import(db, clock, "baca.zip", reading_zip())
    scattered = BLUEPRINT.replace("    picks:", "    keep_passages: false\n    picks:")
    _, logins = make_open_session(db, clock, secret=SECRET, participants=12, code="ACAK",
                                  blueprint_yaml=scattered)
    passage_ids = set(db.scalars(select(Item.id).where(Item.passage == "KISAH-1")))
    apart = 0
    for nip, token in logins:
        attempt = _login(db, clock, nip, token)
        form = db.scalars(select(AttemptItem.item_id).where(AttemptItem.attempt_id == attempt.id)
                          .order_by(AttemptItem.position)).all()
        places = [n for n, item_id in enumerate(form) if item_id in passage_ids]
        apart += places[-1] - places[0] > 2
    assert apart > 0, "with keep_passages: false some forms separate the passage's items"
