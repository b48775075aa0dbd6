"""QTI import and export on real item files (tests/fixtures/qti) and real zip archives."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from app.bank.archive import unpack_zip
from app.bank.parsed import ParsedBank, ParsedItem, ParsedOption
from app.bank.qti import QtiResult, export_qti3_package, parse_qti_files
from app.bank.qti_html import normalize_html
from app.bank.validate import validate_bank

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qti"
QTI3 = "{http://www.imsglobal.org/xsd/imsqtiasi_v3p0}"
CP3 = "{http://www.imsglobal.org/xsd/qti/qtiv3p0/imscp_v1p1}"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_one(name: str, data: bytes | None = None, *, construct: str | None = "potensi.numerik",
              skip: bool = False) -> QtiResult:
    return parse_qti_files({name: fixture(name) if data is None else data}, source=name,
                           default_construct=construct, skip_unsupported=skip)


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def unzip(data: bytes) -> dict[str, bytes]:
    unpacked = unpack_zip(data, source="bank.zip")
    assert unpacked.problems == []
    return unpacked.files


def only_item(result: QtiResult) -> ParsedItem:
    assert result.problems == [] and result.skipped == []
    assert len(result.items) == 1
    return result.items[0]


def options(item: ParsedItem) -> list[tuple[str, str, bool, Decimal | None]]:
    return [(o.ident, o.content, o.is_key, o.weight) for o in item.options]


# -- reading --------------------------------------------------------------------------------------


def test_qti21_single_choice():
    item = only_item(parse_one("qti21_single.xml"))
    assert (item.code, item.kind, item.construct) == ("NUM-001", "single", "potensi.numerik")
    assert item.meta == {"title": "Deret angka"}
    assert item.source == "qti21_single.xml" and item.location == "/assessmentItem"
    # body content first, then the prompt as a paragraph; no QTI element survives
    assert normalize_html(item.stem) == (
        "<p>Perhatikan deret berikut.</p> <table> <tr><td>2</td><td>6</td><td>12</td>"
        "<td>20</td><td>30</td></tr> </table> <p>Bilangan <em>berikutnya</em> adalah \u2026</p>")
    assert "choiceInteraction" not in item.stem and "xmlns" not in item.stem
    # the inline feedback of B is not part of the option
    assert options(item) == [("A", "40", False, None), ("B", "42", True, None),
                             ("C", "44", False, None), ("D", "46", False, None)]
    assert item.options[1].location == "/assessmentItem/itemBody/choiceInteraction/simpleChoice[2]"


def test_qti22_multiple_response_with_mapping_and_bounds():
    item = only_item(parse_one("qti22_multiple.xml", construct="potensi.verbal"))
    assert (item.code, item.kind) == ("VERB-010", "multiple")
    assert item.stem == "<p>Pilih semua sinonim kata <strong>cerdas</strong>.</p>"
    # mapped values are the points; unmapped choices get the mapping's defaultValue
    assert [(o.ident, o.weight, o.is_key) for o in item.options] == [
        ("ChoiceA", Decimal(2), False), ("ChoiceB", Decimal("-0.5"), False),
        ("ChoiceC", Decimal(2), False), ("ChoiceD", Decimal(-1), False)]
    assert item.scoring == {"min": 0.0, "max": 4.0}


def test_qti21_single_cardinality_mapping_is_weighted():
    item = only_item(parse_one("qti21_weighted.xml", construct="kompetensi.integritas"))
    assert (item.code, item.kind) == ("INT-005", "weighted")
    assert normalize_html(item.stem) == (
        "<div> <p>Rekan kerja meminta Anda menandatangani daftar hadir untuknya.</p> </div>")
    assert options(item) == [
        ("A", "<p>Menolak dan menjelaskan aturannya</p>", False, Decimal(5)),
        ("B", "Menolak tanpa penjelasan", False, Decimal(3)),
        ("C", "Bertanya kepada atasan", False, Decimal(2)),
        ("D", "Menandatangani", False, Decimal(1)),  # defaultValue="1"
    ]
    assert item.scoring == {}


def test_match_correct_written_out_as_rules_is_accepted():
    item = only_item(parse_one("qti21_inline_rules.xml"))
    assert item.kind == "single"
    assert [o.ident for o in item.options if o.is_key] == ["choice_2"]
    assert normalize_html(item.stem) == (
        '<div class="grid-row"><div class="col-12"> </div></div> '
        "<p>Manakah yang tidak termasuk kelompoknya?</p>")


def test_qti3_package_with_images_and_manifest_constructs():
    files = unzip(zip_folder(FIXTURES / "package3"))
    result = parse_qti_files(files, source="figural.zip", default_construct="potensi.verbal",
                             skip_unsupported=False)
    assert result.problems == [] and result.skipped == []
    # the assessment test and the stylesheet resources are not items
    first, second = result.items
    assert (first.code, first.kind, first.construct) == ("FIG-001", "single", "potensi.figural")
    assert (second.code, second.construct) == ("FIG-002", "potensi.verbal")  # default
    assert first.source == "items/fig-item.xml" and first.meta == {"title": "Pola gambar"}

    red = (FIXTURES / "package3/items/images/fig.png").read_bytes()
    blue = (FIXTURES / "package3/items/other/images/fig.png").read_bytes()
    assert red != blue
    # same base name, different bytes: the second gets a hash suffix
    assert result.media["fig.png"] == red
    (other_name,) = set(result.media) - {"fig.png"}
    assert other_name.startswith("fig-") and other_name.endswith(".png")
    assert result.media[other_name] == blue

    assert normalize_html(first.stem) == (
        '<p>Perhatikan pola berikut:</p> <p><img src="media/fig.png" alt="pola" width="120" '
        'height="40"></p> <p>Gambar mana yang melanjutkan pola?</p>')
    assert options(first) == [("A", "lingkaran", False, None), ("B", "segitiga", False, None),
                              ("C", "persegi", True, None)]
    assert first.location == "/qti-assessment-item"

    # multiple cardinality with only a correct response (match_correct): all or nothing, the
    # full 2 points only for exactly A and C
    assert second.kind == "multiple"
    assert second.stem == "<p>Pilih <strong>dua</strong> bangun yang simetris.</p>"
    assert options(second) == [
        ("A", f'<img src="media/{other_name}" alt="bangun A">', True, Decimal(1)),
        ("B", "trapesium sembarang", False, Decimal(0)),
        ("C", "lingkaran", True, Decimal(1)),
    ]
    assert second.scoring == {"min": 0.0, "max": 2.0, "exact": True}


def test_qti3_mapping_with_rules_and_qti3_names_in_messages():
    item = only_item(parse_one("qti3_multiple_rules.xml"))
    assert (item.code, item.kind) == ("NUM-020", "multiple")
    # MathML stays MathML; the printed variable and the scorer's rubric are gone
    assert normalize_html(item.stem) == (
        "<p>Mana yang prima, jika <math><mi>n</mi></math> kecil?</p> "
        "<p>Pilih semua yang benar.</p>")
    assert [(o.ident, o.weight) for o in item.options] == [
        ("A", Decimal("1.5")), ("B", Decimal("1.5")), ("C", Decimal(-1))]
    assert item.scoring == {"min": -1.0, "max": 3.0}

    broken = fixture("qti3_multiple_rules.xml").replace(b'map-key="C" mapped-value="-1"',
                                                         b'map-key="Z" mapped-value="x"')
    result = parse_one("broken.xml", broken)
    assert [(p.location, p.message.split(" is not")[0]) for p in result.problems] == [
        ("/qti-assessment-item/qti-response-declaration/qti-mapping/qti-map-entry[3]",
         "map-key 'Z'"),
        ("/qti-assessment-item/qti-response-declaration/qti-mapping/qti-map-entry[3]",
         "mapped-value='x'")]


@pytest.mark.parametrize("skip", [False, True])
def test_unsupported_interaction_is_reported_or_skipped(skip):
    items = {name: fixture(name) for name in ("qti21_single.xml", "qti21_text_entry.xml")}
    result = parse_qti_files(items, source="mixed.zip", default_construct="potensi.verbal",
                             skip_unsupported=skip)
    (reported,) = result.skipped if skip else result.problems
    assert (result.problems if skip else result.skipped) == []
    assert reported.file == "mixed.zip:qti21_text_entry.xml"
    assert reported.item == "TXT-001"
    assert reported.location == "/assessmentItem/itemBody/p/textEntryInteraction"
    assert "uses textEntryInteraction, which is not supported" in reported.message
    assert "skip unsupported items" in reported.message
    assert [item.code for item in result.items] == ["NUM-001"]


def test_custom_response_processing_is_unsupported():
    data = fixture("qti21_inline_rules.xml").replace(b"<match>", b"<gte>").replace(
        b"</match>", b"</gte>")
    result = parse_one("custom.xml", data)
    (problem,) = result.problems
    # The evaluator names the element it cannot run (a comparison of choices, not numbers).
    assert problem.location == "/assessmentItem/responseProcessing/responseCondition/" \
        "responseIf/gte"
    assert "cannot be scored the same way by CACT (a number was expected, at <gte>)" in \
        problem.message and result.items == []


def test_unknown_template_is_unsupported():
    data = fixture("qti21_single.xml").replace(b"rptemplates/match_correct",
                                               b"rptemplates/map_response_point")
    result = parse_one("point.xml", data, skip=True)
    (skipped,) = result.skipped
    assert "map_response_point" in skipped.message and result.problems == []


def test_malformed_xml_names_line_and_column():
    result = parse_one("malformed.xml")
    (problem,) = result.problems
    assert problem.file == "malformed.xml"
    assert problem.location.startswith("line 5, column ")
    assert "mismatched tag" in problem.message and result.items == []


def test_entity_expansion_is_refused_not_expanded():
    result = parse_one("billion_laughs.xml")
    (problem,) = result.problems
    assert "refused" in problem.message and "entity 'lol'" in problem.message
    assert result.items == []


def test_missing_and_remote_images_are_all_reported():
    result = parse_one("qti21_images.xml")
    assert result.items == [] and result.media == {}
    by_location = {p.location: p.message for p in result.problems}
    assert len(result.problems) == 4
    assert all(p.item == "IMG-001" for p in result.problems)
    missing = by_location["/assessmentItem/itemBody/p[1]/img"]
    assert "images/missing.png is missing" in missing and "content package" in missing
    assert "remote address" in by_location["/assessmentItem/itemBody/p[2]/img"]
    choice = "/assessmentItem/itemBody/choiceInteraction/simpleChoice[{}]/img"
    assert "remote address" in by_location[choice.format(1)]
    assert "embedded as a data: address" in by_location[choice.format(2)]
    # listed in document order: stem first, then the options
    assert [p.location for p in result.problems] == [
        "/assessmentItem/itemBody/p[1]/img", "/assessmentItem/itemBody/p[2]/img",
        choice.format(1), choice.format(2)]


def test_missing_image_in_package_names_the_resolved_path():
    files = unzip(zip_folder(FIXTURES / "package3"))
    del files["items/other/images/fig.png"]
    result = parse_qti_files(files, source="p.zip", default_construct="potensi.verbal",
                             skip_unsupported=False)
    (problem,) = result.problems
    assert (problem.file, problem.item) == ("p.zip:items/other/item2.xml", "FIG-002")
    assert "items/other/images/fig.png" in problem.message
    assert [item.code for item in result.items] == ["FIG-001"]


def test_missing_construct_asks_for_default_or_keyword():
    result = parse_one("qti21_single.xml", construct=None)
    (problem,) = result.problems
    assert problem.item == "NUM-001"
    assert "default construct" in problem.message and "cact:construct=" in problem.message


def test_several_problems_of_one_item_are_all_collected():
    data = (fixture("qti21_single.xml")
            .replace(b"<correctResponse>\n      <value>B</value>\n    </correctResponse>", b"")
            .replace(b'<simpleChoice identifier="C">44</simpleChoice>', b"")
            .replace(b'<simpleChoice identifier="D">46</simpleChoice>', b"")
            .replace(b'<simpleChoice identifier="A">40</simpleChoice>', b""))
    result = parse_one("broken.xml", data, construct=None)
    messages = " | ".join(p.message for p in result.problems)
    assert len(result.problems) == 3, messages
    assert "no correct answer" in messages and "1 choice(s)" in messages
    assert "no construct" in messages


def test_duplicate_identifiers_and_not_qti():
    files = {"a.xml": fixture("qti21_single.xml"), "b.xml": fixture("qti21_single.xml"),
             "old.xml": b"<questestinterop><item ident='x'/></questestinterop>",
             "test.xml": fixture("package3/test.xml")}  # a test is not an item: ignored
    result = parse_qti_files(files, source="dup.zip", default_construct="potensi.numerik",
                             skip_unsupported=False)
    assert [item.code for item in result.items] == ["NUM-001"]
    duplicate, old = result.problems
    assert duplicate.file == "dup.zip:b.xml" and "used again (first in dup.zip:a.xml)" in \
        duplicate.message
    assert old.file == "dup.zip:old.xml" and "not a QTI 2.1, 2.2 or 3.0" in old.message


def test_manifest_resource_without_its_file():
    files = unzip(zip_folder(FIXTURES / "package3"))
    del files["items/fig-item.xml"]
    result = parse_qti_files(files, source="p.zip", default_construct="potensi.verbal",
                             skip_unsupported=False)
    (problem,) = result.problems
    assert problem.file == "p.zip:imsmanifest.xml"
    assert problem.location == "/manifest/resources/resource[2]"
    assert "items/fig-item.xml" in problem.message


# -- writing --------------------------------------------------------------------------------------


def bank_items() -> tuple[list[ParsedItem], dict[str, bytes]]:
    png = (FIXTURES / "package3/items/images/fig.png").read_bytes()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    items = [
        ParsedItem(
            code="NUM-001", kind="single", construct="potensi.numerik",
            stem='<p>Lanjutkan deret: 2, 6, 12, 20, 30, &hellip;<br>Lihat <img src="media/'
                 'deret.png" alt="deret &amp; pola" width="40"></p><p>a&nbsp;&lt;&nbsp;b</p>',
            options=[ParsedOption("A", "40"), ParsedOption("B", "42", is_key=True),
                     ParsedOption("C", '<img src="media/opt-c.svg" alt="c">'),
                     ParsedOption("D", "46")],
            meta={"title": "Deret"}),
        ParsedItem(
            code="INT-005", kind="weighted", construct="kompetensi.integritas",
            stem="<p>Apa yang Anda lakukan?</p><ul><li>situasi <b>satu</b> <i>dua</i></li></ul>",
            options=[ParsedOption("A", "Menolak", weight=Decimal("5.000")),
                     ParsedOption("B", "Diam", weight=Decimal(0)),
                     ParsedOption("C", "Lapor", weight=Decimal("2.5"))]),
        ParsedItem(
            code="VERB-010", kind="multiple", construct="potensi.verbal",
            stem="<p>Pilih sinonim <em>cerdas</em>:</p><hr><table><tr><td colspan=\"2\">x</td>"
                 "</tr></table>",
            options=[ParsedOption("1", "pandai", weight=Decimal(2)),
                     ParsedOption("2", "lambat", weight=Decimal(-1)),
                     ParsedOption("3", "pintar", weight=Decimal(2)),
                     ParsedOption("4", "bodoh", weight=Decimal(0))],
            scoring={"min": 0.0, "max": 3.5}),
    ]
    return items, {"deret.png": png, "opt-c.svg": svg, "unused.png": b"not exported"}


def comparable(item: ParsedItem) -> tuple:
    return (item.code, item.kind, item.construct, normalize_html(item.stem),
            [(o.ident, normalize_html(o.content), o.is_key, o.weight) for o in item.options],
            item.scoring, item.meta)


def test_round_trip_through_a_qti3_package():
    items, media = bank_items()
    package = export_qti3_package(items, media, title="Bank & contoh")
    result = parse_qti_files(unzip(package), source="export.zip", default_construct=None,
                             skip_unsupported=False)
    assert result.problems == [] and result.skipped == []
    assert [comparable(item) for item in result.items] == [comparable(item) for item in items]
    assert result.media == {"deret.png": media["deret.png"], "opt-c.svg": media["opt-c.svg"]}
    # reading an export and exporting it again gives the same bytes
    again = export_qti3_package(result.items, result.media, title="Bank & contoh")
    assert again == package


def test_export_writes_a_qti3_content_package():
    items, media = bank_items()
    files = unzip(export_qti3_package(items, media, title="Contoh"))
    assert sorted(files) == ["imsmanifest.xml", "items/INT-005.xml", "items/NUM-001.xml",
                             "items/VERB-010.xml", "items/media/deret.png",
                             "items/media/opt-c.svg"]
    manifest = SafeET.fromstring(files["imsmanifest.xml"])
    resources = manifest.findall(f"{CP3}resources/{CP3}resource")
    assert [(r.get("type"), r.get("href")) for r in resources] == [
        ("imsqti_item_xmlv3p0", "items/NUM-001.xml"), ("imsqti_item_xmlv3p0", "items/INT-005.xml"),
        ("imsqti_item_xmlv3p0", "items/VERB-010.xml")]
    assert [f.get("href") for f in resources[0].findall(f"{CP3}file")] == [
        "items/NUM-001.xml", "items/media/deret.png", "items/media/opt-c.svg"]
    keywords = ["".join(k.itertext()).strip() for k in resources[1].iter(
        "{http://ltsc.ieee.org/xsd/LOM}keyword")]
    assert keywords == ["cact:construct=kompetensi.integritas"]

    single = SafeET.fromstring(files["items/NUM-001.xml"])
    assert single.tag == f"{QTI3}qti-assessment-item" and single.get("title") == "Deret"
    assert [v.text for v in single.iter(f"{QTI3}qti-value")] == ["B"]
    interaction = single.find(f"{QTI3}qti-item-body/{QTI3}qti-choice-interaction")
    assert interaction.get("max-choices") == "1"
    assert interaction.find(f"{QTI3}qti-prompt") is None
    assert single.find(f"{QTI3}qti-response-processing").get("template") == (
        "https://purl.imsglobal.org/spec/qti/v3p0/rptemplates/match_correct.xml")
    # void elements came in unclosed and are valid XML elements now
    assert single.find(f".//{QTI3}br") is not None
    assert single.find(f".//{QTI3}img").get("src") == "media/deret.png"

    multiple = SafeET.fromstring(files["items/VERB-010.xml"])
    mapping = multiple.find(f".//{QTI3}qti-mapping")
    assert (mapping.get("lower-bound"), mapping.get("upper-bound")) == ("0", "3.5")
    assert [(e.get("map-key"), e.get("mapped-value")) for e in mapping] == [
        ("1", "2"), ("2", "-1"), ("3", "2"), ("4", "0")]
    assert [v.text for v in multiple.iter(f"{QTI3}qti-value")] == ["1", "3"]
    assert multiple.find(f".//{QTI3}qti-choice-interaction").get("max-choices") == "0"
    assert multiple.find(f"{QTI3}qti-response-processing").get("template").endswith(
        "/map_response.xml")


def test_export_makes_loose_html_xml_safe():
    stem = ("<p>a<br>b<BR/>c<img src='media/x.png' alt=x>&nbsp;&amp; &lt;tag&gt; \x07"
            "<td nowrap>cell</td><hr><input disabled></p><p>unclosed <b>bold")
    item = ParsedItem(code="X-1", kind="single", construct="potensi.verbal", stem=stem,
                      options=[ParsedOption("A", "ya<br>", is_key=True),
                               ParsedOption("B", "tidak &amp; <wbr>")])
    files = unzip(export_qti3_package([item], {"x.png": b"png"}, title="t"))
    SafeET.fromstring(files["items/X-1.xml"])  # well-formed
    (back,) = parse_qti_files(files, source="x.zip", default_construct=None,
                              skip_unsupported=False).items
    assert back.stem == (
        '<p>a<br>b<br>c<img src="media/x.png" alt="x">\xa0&amp; &lt;tag&gt; '
        '<td nowrap="nowrap">cell</td><hr><input disabled="disabled"></p>'
        "<p>unclosed <b>bold</b></p>")
    assert [o.content for o in back.options] == ["ya<br>", "tidak &amp; <wbr>"]


def test_likert_is_exported_as_weighted_with_its_scores():
    likert = ParsedItem(
        code="SK-1", kind="likert", construct="potensi.kesadaran_diri",
        stem="<p>Saya suka bekerja sama.</p>", scoring={"reverse": True},
        options=[ParsedOption(str(n), label) for n, label in
                 enumerate(["Tidak setuju", "Ragu", "Setuju"], 1)])
    result = parse_qti_files(unzip(export_qti3_package([likert], {}, title="t")),
                             source="l.zip", default_construct=None, skip_unsupported=False)
    (item,) = result.items
    assert item.kind == "weighted"
    assert [o.weight for o in item.options] == [Decimal(3), Decimal(2), Decimal(1)]


def test_export_refuses_an_image_missing_from_media():
    items, media = bank_items()
    del media["deret.png"]
    with pytest.raises(ValueError, match=r"media/deret\.png"):
        export_qti3_package(items, media, title="t")


def test_the_authors_option_order_is_kept():
    # shuffle="false" on the interaction: never shuffled
    assert only_item(parse_one("qti22_multiple.xml")).meta.get("shuffle") is False
    # fixed="true" on a choice: it keeps its place, the others are shuffled
    data = fixture("qti21_single.xml").replace(b'<simpleChoice identifier="D">',
                                               b'<simpleChoice identifier="D" fixed="true">')
    item = only_item(parse_one("fixed.xml", data))
    assert item.meta.get("fixed") == ["D"] and "shuffle" not in item.meta
    assert "fixed" not in only_item(parse_one("qti21_single.xml")).meta


MATH = (b'<p>Hitung <m:math xmlns:m="http://www.w3.org/1998/Math/MathML"><m:mfrac><m:mn>1</m:mn>'
        b'<m:mn>2</m:mn></m:mfrac><m:mo>+</m:mo><m:msqrt><m:mn>9</m:mn></m:msqrt>'
        b'<m:msup onclick="x"><m:mi>x</m:mi><m:mn>2</m:mn></m:msup></m:math></p>')


def test_mathml_is_kept_as_mathml_and_sanitized():
    data = fixture("qti21_single.xml").replace(b"<p>Perhatikan deret berikut.</p>", MATH)
    item = only_item(parse_one("rumus.xml", data))
    validate_bank(ParsedBank(code="UJI", title="Uji", kind="potensi", items=[item]))
    assert ("<p>Hitung <math><mfrac><mn>1</mn><mn>2</mn></mfrac><mo>+</mo><msqrt><mn>9</mn>"
            "</msqrt><msup><mi>x</mi><mn>2</mn></msup></math></p>") in item.stem
    assert "onclick" not in item.stem and "m:" not in item.stem


def test_mathml_round_trips_through_the_qti_export():
    item = ParsedItem(code="M-1", kind="single", construct="potensi.numerik",
                      stem="<p>Hitung <math><mfrac><mn>1</mn><mn>2</mn></mfrac></math></p>",
                      options=[ParsedOption("A", "1", True), ParsedOption("B", "2")])
    files = unpack_zip(export_qti3_package([item], {}, title="Rumus"), source="rumus.zip").files
    text = next(v for k, v in files.items() if k.endswith("M-1.xml")).decode()
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML"><mfrac>' in text
    again = parse_qti_files(files, source="rumus.zip", default_construct="potensi.numerik",
                            skip_unsupported=False)
    assert again.problems == [] and again.items[0].stem == item.stem
