"""Writing items as a QTI 3.0 content package, so a bank can move to other QTI tools and
come back through the QTI importer unchanged (``app.bank.qti`` reads what this writes)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from app.bank.parsed import ParsedItem, ParsedPassage
from app.bank.qti_html import html_to_element, xml_text

QTI3_NS = "http://www.imsglobal.org/xsd/imsqtiasi_v3p0"
QTI3_SCHEMA = "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqti_asiv3p0_v1p0.xsd"
CP3_NS = "http://www.imsglobal.org/xsd/qti/qtiv3p0/imscp_v1p1"
CP3_SCHEMA = "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqtiv3p0_imscpv1p2_v1p0.xsd"
LOM_NS = "http://ltsc.ieee.org/xsd/LOM"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
TEMPLATES = "https://purl.imsglobal.org/spec/qti/v3p0/rptemplates/"
_MEDIA_SRC = re.compile(r"^media/([^/]+)$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same bank gives the same bytes


def export_qti3_package(items: list[ParsedItem], media: dict[str, bytes], *, title: str,
                        passages: dict[str, ParsedPassage] | None = None) -> bytes:
    """A zip with imsmanifest.xml, items/<code>.xml, items/media/<name> and, for items asked
    about a passage, items/passages/<code>.xml: a shared stimulus
    (``qti-assessment-stimulus``) each of its items refers to with
    ``qti-assessment-stimulus-ref``.

    Each item's construct is kept as the manifest keyword ``cact:construct=<code>`` and its
    ``meta["title"]`` as the item title. single -> match_correct; weighted -> map_response with
    a mapping (default 0); multiple all-or-nothing (``exact``) -> match_correct with the keyed
    set; other multiple -> map_response with the points, the scoring bounds as
    lower/upper bound and the positive-point options as correct response.

    Likert items have no QTI equivalent (a scale with an optional reverse flag): they are
    written as weighted items whose weights are the scores the options give (default 1..n,
    reversed when ``reverse`` is set), so they score the same elsewhere but come back as
    ``weighted``. Not carried: item level, IRT parameters, tags, option levels.

    Raises ValueError when an image the items refer to is not in ``media``."""
    files: list[tuple[str, bytes]] = []
    resources: list[tuple[ParsedItem, str, list[str]]] = []
    stimuli: dict[str, tuple[str, list[str]]] = {}  # passage code -> (resource id, hrefs)
    written: set[str] = set()
    used: set[str] = set()

    def add_media(images: list[str], hrefs: list[str], who: str) -> None:
        for image in images:
            if image not in media:
                raise ValueError(f"{who} shows media/{image}, which is not in the bank's media")
            hrefs.append(f"items/media/{image}")
            if image not in written:
                written.add(image)
                files.append((f"items/media/{image}", media[image]))

    for item in items:
        if item.passage and item.passage not in stimuli:
            passage = (passages or {})[item.passage]
            href = f"passages/{_unique('P-' + _file_name(passage.code), used)}.xml"
            document, images = _stimulus_document(passage)
            files.append((f"items/{href}", document))
            stimuli[item.passage] = (href, [f"items/{href}"])
            add_media(images, stimuli[item.passage][1], f"passage {passage.code}")
        name = _unique(_file_name(item.code) or "item", used)
        href = f"items/{name}.xml"
        document, images = _item_document(
            item, stimuli[item.passage][0] if item.passage else None)
        files.append((href, document))
        hrefs = [href]
        add_media(images, hrefs, f"item {item.code}")
        resources.append((item, name, hrefs))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = _manifest(resources, title, stimuli)
        for path, data in [("imsmanifest.xml", manifest), *files]:
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _file_name(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", code)


def _stimulus_document(passage: ParsedPassage) -> tuple[bytes, list[str]]:
    """A passage as a QTI 3 shared stimulus; its images are one folder up (items/media)."""
    root = Element("qti-assessment-stimulus", {
        "xmlns": QTI3_NS, "xmlns:xsi": XSI_NS,
        "xsi:schemaLocation": f"{QTI3_NS} {QTI3_SCHEMA}",
        "identifier": passage.code, "title": xml_text(passage.title or passage.code)})
    body = SubElement(root, "qti-stimulus-body")
    images: list[str] = []
    content = _fragment(passage.content, images)
    for image in content.iter("img"):
        image.set("src", "../" + (image.get("src") or ""))
    body.text = content.text
    body.extend(list(content))
    return tostring(root, encoding="utf-8", xml_declaration=True), list(dict.fromkeys(images))


def _unique(name: str, used: set[str]) -> str:
    # Case-insensitively: the zip may be unpacked on a file system that ignores case.
    candidate, number = name, 1
    while candidate.lower() in used:
        number += 1
        candidate = f"{name}-{number}"
    used.add(candidate.lower())
    return candidate


def _number(value: Decimal | float) -> str:
    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def _scores(item: ParsedItem) -> Sequence[Decimal | None]:
    """What each option scores under the item's kind (None for single choice)."""
    if item.kind != "likert":
        return [option.weight for option in item.options]
    count = len(item.options)
    weights = [option.weight if option.weight is not None else Decimal(position)
               for position, option in enumerate(item.options, 1)]
    return [count + 1 - w for w in weights] if item.scoring.get("reverse") else weights


def _item_document(item: ParsedItem, stimulus: str | None = None) -> tuple[bytes, list[str]]:
    kind = "weighted" if item.kind == "likert" else item.kind
    root = Element("qti-assessment-item", {
        "xmlns": QTI3_NS, "xmlns:xsi": XSI_NS, "xsi:schemaLocation": f"{QTI3_NS} {QTI3_SCHEMA}",
        "identifier": item.code, "title": xml_text(str(item.meta.get("title") or item.code)),
        "adaptive": "false", "time-dependent": "false",
    })
    declaration = SubElement(root, "qti-response-declaration", {
        "identifier": "RESPONSE", "cardinality": "multiple" if kind == "multiple" else "single",
        "base-type": "identifier"})
    scores = _scores(item)
    exact = kind == "multiple" and bool(item.scoring.get("exact"))  # all or nothing
    if kind == "single" or exact:
        correct = [option.ident for option in item.options if option.is_key]
    else:
        correct = [option.ident for option, score in zip(item.options, scores, strict=True)
                   if kind == "multiple" and score is not None and score > 0]
    if correct:
        holder = SubElement(declaration, "qti-correct-response")
        for ident in correct:
            SubElement(holder, "qti-value").text = ident
    if kind != "single" and not exact:
        mapping = SubElement(declaration, "qti-mapping", {"default-value": "0"})
        for bound, attribute in (("min", "lower-bound"), ("max", "upper-bound")):
            if kind == "multiple" and item.scoring.get(bound) is not None:
                mapping.set(attribute, _number(item.scoring[bound]))
        for option, score in zip(item.options, scores, strict=True):
            if score is not None:
                SubElement(mapping, "qti-map-entry", {"map-key": option.ident,
                                                      "mapped-value": _number(score)})
    SubElement(root, "qti-outcome-declaration", {"identifier": "SCORE", "cardinality": "single",
                                                 "base-type": "float"})
    if stimulus is not None and item.passage:
        SubElement(root, "qti-assessment-stimulus-ref", {"identifier": item.passage,
                                                         "href": stimulus})
    body = SubElement(root, "qti-item-body")
    limits = {"max-choices": str(item.scoring.get("max_choices") or 0)
              if kind == "multiple" else "1"}
    if kind == "multiple" and item.scoring.get("min_choices"):
        limits["min-choices"] = str(item.scoring["min_choices"])
    interaction = SubElement(body, "qti-choice-interaction", {
        "response-identifier": "RESPONSE", **limits})
    choices = [SubElement(interaction, "qti-simple-choice", {"identifier": option.ident})
               for option in item.options]
    template = "match_correct" if kind == "single" or exact else "map_response"
    SubElement(root, "qti-response-processing", {"template": f"{TEMPLATES}{template}.xml"})
    # Indent the skeleton only: whitespace inside the item text would change how it reads.
    indent(root)
    images: list[str] = []
    stem = _fragment(item.stem, images)
    spacing = body.text or ""  # indent() gave it the skeleton's whitespace
    body.text = spacing + (stem.text or "")
    for position, child in enumerate(list(stem)):
        body.insert(position, child)
    if len(stem):
        stem[-1].tail = (stem[-1].tail or "") + spacing
    else:
        body.text += spacing
    for choice, option in zip(choices, item.options, strict=True):
        content = _fragment(option.content, images)
        choice.text = content.text
        choice.extend(list(content))
    return tostring(root, encoding="utf-8", xml_declaration=True), list(dict.fromkeys(images))


MATHML_NS = "http://www.w3.org/1998/Math/MathML"


def _fragment(html: str, images: list[str]) -> Element:
    fragment = html_to_element(html.strip())
    for formula in fragment.iter("math"):  # MathML in its own namespace, as QTI expects
        formula.set("xmlns", MATHML_NS)
    for image in fragment.iter("img"):
        match = _MEDIA_SRC.match(image.get("src") or "")
        if match:
            images.append(match.group(1))
    return fragment


def _manifest(resources: list[tuple[ParsedItem, str, list[str]]], title: str,
              stimuli: dict[str, tuple[str, list[str]]]) -> bytes:
    root = Element("manifest", {
        "xmlns": CP3_NS, "xmlns:imsmd": LOM_NS, "xmlns:xsi": XSI_NS,
        "xsi:schemaLocation": f"{CP3_NS} {CP3_SCHEMA}", "identifier": "MANIFEST-CACT"})
    metadata = SubElement(root, "metadata")
    SubElement(metadata, "schema").text = "QTI Package"
    SubElement(metadata, "schemaversion").text = "3.0.0"
    general = SubElement(SubElement(metadata, "imsmd:lom"), "imsmd:general")
    SubElement(SubElement(general, "imsmd:title"), "imsmd:string").text = xml_text(title)
    SubElement(root, "organizations")
    holder = SubElement(root, "resources")
    for code, (_href, hrefs) in stimuli.items():
        resource = SubElement(holder, "resource", {
            "identifier": f"STIM-{_file_name(code)}", "type": "imsqti_stimulus_xmlv3p0",
            "href": hrefs[0]})
        for href in hrefs:
            SubElement(resource, "file", {"href": href})
    for item, name, hrefs in resources:
        resource = SubElement(holder, "resource", {
            "identifier": f"RES-{name}", "type": "imsqti_item_xmlv3p0", "href": hrefs[0]})
        general = SubElement(SubElement(SubElement(resource, "metadata"), "imsmd:lom"),
                             "imsmd:general")
        keyword = SubElement(general, "imsmd:keyword")
        SubElement(keyword, "imsmd:string").text = f"cact:construct={item.construct}"
        for href in hrefs:
            SubElement(resource, "file", {"href": href})
        if item.passage in stimuli:
            SubElement(resource, "dependency",
                       {"identifierref": f"STIM-{_file_name(item.passage)}"})
    indent(root)
    return tostring(root, encoding="utf-8", xml_declaration=True)
