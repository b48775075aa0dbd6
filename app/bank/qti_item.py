"""One QTI item file read the same way whatever its version, and its choice item.

QTI 3.0 spells QTI elements in kebab case with a ``qti-`` prefix, 2.x in camelCase; both are
mapped to the 2.x names once, so every rule below is written once. HTML inside the item body
is in the QTI namespace in every version and keeps its names.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from app.bank import qti_passage, qti_rp
from app.bank.parsed import ParsedItem, ParsedOption, Phrase
from app.bank.qti_html import DROP, KEEP, UNWRAP, has_block, serialize_children

QTI_NAMESPACES = {
    "http://www.imsglobal.org/xsd/imsqti_v2p1": "2.1",
    "http://www.imsglobal.org/xsd/imsqti_v2p2": "2.2",
    "http://www.imsglobal.org/xsd/imsqtiasi_v3p0": "3.0",
}
REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
# QTI 2.x body elements spelled in lower case; every other QTI name has a capital letter.
_QTI2_LOWER = frozenset({"prompt", "gap", "hottext"})
# QTI content a test taker must not see as item text (feedback, conditional or computed parts).
_DROPPED = frozenset({
    "feedbackInline", "feedbackBlock", "modalFeedback", "templateInline", "templateBlock",
    "printedVariable", "stylesheet", "catalogInfo", "companionMaterialsInfo", "infoControl",
})
# Element names of response rules that only re-state a standard template (TAO, for one,
# writes the template out instead of referring to it).
_RULES = {
    "match_correct": {"responseCondition", "responseIf", "responseElse", "match", "variable",
                      "correct", "setOutcomeValue", "baseValue"},
    "map_response": {"responseCondition", "responseIf", "responseElse", "isNull", "variable",
                     "setOutcomeValue", "baseValue", "mapResponse"},
}


# Common Cartridge's templates (IMS CC 1.x/2.x, written by LMS exports) are the standard ones
# under other names: CC2_match scores 1 for exactly the correct response, CC2_map_response
# applies the mapping.
_ALIASES = {"cc2_match": "match_correct", "cc2_match_basic": "match_correct",
            "cc2_map_response": "map_response"}


def local_name(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local


def _camel(kebab: str) -> str:
    first, *rest = kebab.split("-")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def element_path(element: Element | None, parents: dict[Element, Element],
                 name: Callable[[Element], str]) -> str:
    """An XPath-like address ("/assessmentItem/itemBody/div[2]/img") for error messages;
    ElementTree keeps no line numbers."""
    parts = []
    while element is not None:
        parent = parents.get(element)
        label = name(element)
        if parent is not None:
            same = [sibling for sibling in parent if name(sibling) == label]
            if len(same) > 1:
                label += f"[{same.index(element) + 1}]"
        parts.append(label)
        element = parent
    return "/" + "/".join(reversed(parts))


def parent_map(root: Element) -> dict[Element, Element]:
    return {child: parent for parent in root.iter() for child in parent}


class Doc:
    """One item file with version-neutral names: QTI elements get their 2.x camelCase tag
    (and attributes), HTML elements keep theirs, and the original spelling is kept for the
    locations shown to the author."""

    def __init__(self, root: Element, version: str) -> None:
        self.root = root
        self.v3 = version == "3.0"
        self.parents = parent_map(root)
        self.original: dict[Element, str] = {}
        self.qti: set[Element] = set()
        for element in root.iter():
            namespace, local = local_name(element.tag)
            self.original[element] = local
            if namespace and namespace not in QTI_NAMESPACES:
                continue  # MathML, XInclude ...: keep "{ns}local"
            element.tag = local
            if self.v3 and local.startswith("qti-"):
                element.tag = _camel(local[4:])
                attributes = {(key if key.startswith("{") else _camel(key)): value
                              for key, value in element.attrib.items()}
                element.attrib.clear()
                element.attrib.update(attributes)
                self.qti.add(element)
            elif not self.v3 and (local != local.lower() or local in _QTI2_LOWER):
                self.qti.add(element)

    def path(self, element: Element) -> str:
        return element_path(element, self.parents, lambda e: self.original.get(e, e.tag))

    def name(self, element: Element) -> str:
        return self.original.get(element, element.tag)

    def spell(self, name: str, *, attribute: bool = False) -> str:
        """A QTI name ("correctResponse", "mapKey") as the author's version writes it, for
        messages that tell them what to add."""
        if not self.v3:
            return name
        kebab = re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), name)
        return kebab if attribute else f"qti-{kebab}"


def unsupported(doc: Doc) -> tuple[Element, Phrase] | None:
    """The first reason CACT cannot score the item as its author meant, if any."""
    body = next((e for e in doc.root if e.tag == "itemBody"), None)
    interactions = [e for e in (body.iter() if body is not None else ())
                    if e in doc.qti and e.tag.endswith("Interaction")]
    others = [e for e in interactions if e.tag != "choiceInteraction"]
    if others:
        names = ", ".join(dict.fromkeys(doc.name(e) for e in others))
        return others[0], Phrase(key="qti_uses", params={"names": names})
    if body is not None and not interactions:
        return body, Phrase(key="qti_no_interaction")
    if len(interactions) > 1:
        return interactions[1], Phrase(key="qti_many_interactions",
                                       params={"count": len(interactions)})
    processing = next((e for e in doc.root if e.tag == "responseProcessing"), None)
    if processing is not None and _template(processing) is None:
        template = processing.get("template")
        if template:
            return processing, Phrase(key="qti_uses_template", params={"template": template})
        try:
            derived(doc, processing)
        except qti_rp.NotEvaluable as exc:
            return exc.element, Phrase(key="qti_uses_custom_processing_why",
                                       params={"element": doc.name(exc.element),
                                               "reason": exc.reason})
    if interactions:
        identifier = interactions[0].get("responseIdentifier")
        for declaration in doc.root:
            if (declaration.tag == "responseDeclaration"
                    and declaration.get("identifier") == identifier
                    and declaration.get("cardinality") not in (None, "single", "multiple")):
                return declaration, Phrase(key="qti_cardinality",
                                           params={"cardinality": declaration.get("cardinality")})
            if (declaration.tag == "responseDeclaration"
                    and declaration.get("identifier") == identifier
                    and _nothing_to_score(declaration, processing)):
                # A survey (Likert) item: no right answer and no points to give. It cannot be
                # scored as its author meant, so --skip-unsupported may leave it out.
                return declaration, Phrase(key="qti_nothing_to_score", params={
                    "holder": doc.spell("correctResponse"), "mapping": doc.spell("mapping")})
    return None


def _nothing_to_score(declaration: Element, processing: Element | None) -> bool:
    """No response processing at all (a survey item), no mapping and no correct response:
    nothing to score. An item whose processing matches a correct response it does not declare
    is an authoring mistake instead, reported with the item's other problems."""
    if processing is not None and _template(processing) != "":
        return False
    if declaration.find("mapping") is not None:
        return False
    correct = declaration.find("correctResponse")
    return correct is None or not any((v.text or "").strip()
                                      for v in correct.findall("value"))


def _template(processing: Element) -> str | None:
    """"match_correct", "map_response", "" (no processing at all) or None (processing written
    out in full: :func:`derived` runs it)."""
    template = (processing.get("template") or "").strip()
    if template:
        name = template.rstrip("/").rsplit("/", 1)[-1]
        name = name[:-4] if name.lower().endswith(".xml") else name
        name = _ALIASES.get(name.lower(), name)
        return name if name in _RULES else None
    if not len(processing):
        return ""
    return None


def _declaration_of(doc: Doc) -> tuple[Element | None, Element | None]:
    body = next((e for e in doc.root if e.tag == "itemBody"), None)
    interaction = next((e for e in (body.iter() if body is not None else ())
                        if e in doc.qti and e.tag == "choiceInteraction"), None)
    identifier = interaction.get("responseIdentifier") if interaction is not None else None
    declaration = next((e for e in doc.root if e.tag == "responseDeclaration"
                        and e.get("identifier") == identifier), None)
    return interaction, declaration


def _numbers_ok(mapping: Element) -> bool:
    raws = [mapping.get(a) for a in ("defaultValue", "lowerBound", "upperBound")]
    raws += [e.get("mappedValue") for e in mapping.findall("mapEntry")]
    try:
        return all(raw is None or Decimal(raw.strip()).is_finite() for raw in raws)
    except InvalidOperation:
        return False


def derived(doc: Doc, processing: Element) -> qti_rp.Derived:
    """What a response processing written out in full does, by running it for every response
    (app/bank/qti_rp.py); NotEvaluable when the scorer cannot do the same."""
    interaction, declaration = _declaration_of(doc)
    if interaction is None or declaration is None:
        raise qti_rp.NotEvaluable(processing, "no choice interaction with its declaration")
    idents = [(c.get("identifier") or "").strip() for c in interaction
              if c.tag == "simpleChoice"]
    multiple = declaration.get("cardinality") == "multiple"
    holder = declaration.find("correctResponse")
    values = [(v.text or "").strip() for v in holder.findall("value")] \
        if holder is not None else []
    correct: object = frozenset(values) if multiple else (values[0] if values else None)
    mapping = None
    found = declaration.find("mapping")
    if found is not None and any(e.tag == "mapResponse" for e in processing.iter()) and not \
            _numbers_ok(found):
        # A standard tree over a broken mapping: read as the mapping, whose reader reports
        # each bad entry where it is.
        return qti_rp.Derived("map_response")
    if found is not None:
        def number(name: str) -> Decimal | None:
            raw = found.get(name)
            try:
                return Decimal(raw.strip()) if raw is not None else None
            except InvalidOperation:
                raise qti_rp.NotEvaluable(found, f"{name} is not a number") from None

        entries = {}
        for entry in found.findall("mapEntry"):
            value = entry.get("mappedValue")
            try:
                entries[(entry.get("mapKey") or "").strip()] = Decimal((value or "").strip())
            except InvalidOperation:
                raise qti_rp.NotEvaluable(entry, "mappedValue is not a number") from None
        mapping = qti_rp.Mapping_(entries, number("defaultValue") or Decimal(0),
                                  number("lowerBound"), number("upperBound"))
    outcomes: dict[str, object] = {}
    for outcome in (o for o in doc.root if o.tag == "outcomeDeclaration"):
        default = outcome.find("defaultValue")
        holder = default.find("value") if default is not None else None
        text = (holder.text or "").strip() if holder is not None else ""
        kind = outcome.get("baseType") or ""
        try:
            outcomes[outcome.get("identifier") or ""] = (
                Decimal(text) if text and kind in ("float", "integer")
                else text or (Decimal(0) if kind in ("float", "integer") else None))
        except InvalidOperation:
            outcomes[outcome.get("identifier") or ""] = None
    return qti_rp.derive(processing, idents=idents, multiple=multiple, correct=correct,
                         mapping=mapping, score="SCORE",
                         name=declaration.get("identifier") or qti_rp.RESPONSE,
                         outcomes=outcomes)


def _image_object(element: Element) -> bool:
    kind = element.get("type") or ""
    data = (element.get("data") or "").lower().split("?", 1)[0]
    return len(element) == 0 and (kind.startswith("image/")
                                  or (not kind and data.endswith(IMAGE_SUFFIXES)))


MATHML_NS = "http://www.w3.org/1998/Math/MathML"


class ItemReader:
    """The supported item (one choiceInteraction, single or multiple) as a ParsedItem.

    ``files`` is the whole package, for images relative to the item; ``media_name`` gives the
    flat name an image file is stored under."""

    def __init__(self, doc: Doc, path: str, problem: Callable[..., None],
                 files: dict[str, bytes], media_name: Callable[[str, bytes], str],
                 passage: Callable[[Element, str], None] | None = None) -> None:
        self.doc, self.path, self.problem = doc, path, problem
        self.files, self.media_name = files, media_name
        self.passage = passage  # told of each embedded HTML page or XInclude (a passage)

    def read(self) -> ParsedItem | None:
        doc, problem, spell = self.doc, self.problem, self.doc.spell
        body = next((e for e in doc.root if e.tag == "itemBody"), None)
        if body is None:
            problem(doc.root, key="qti_no_body", body=spell("itemBody"),
                    interaction=spell("choiceInteraction"))
            return None
        interaction = next(e for e in body.iter()
                           if e in doc.qti and e.tag == "choiceInteraction")
        identifier = interaction.get("responseIdentifier", "")
        declaration = next((e for e in doc.root if e.tag == "responseDeclaration"
                            and e.get("identifier") == identifier), None)
        choices = [e for e in interaction if e.tag == "simpleChoice"]
        idents = [(c.get("identifier") or "").strip() for c in choices]
        for position, (choice, ident) in enumerate(zip(choices, idents, strict=True)):
            if not ident:
                problem(choice, key="qti_choice_no_identifier", choice=spell("simpleChoice"))
            elif ident in idents[:position]:
                problem(choice, key="qti_choice_twice", ident=ident)
        if len(choices) < 2:
            problem(interaction, key="qti_few_choices", count=len(choices),
                    choice=spell("simpleChoice"))
        # Text before options, so that problems (images) are listed in document order.
        stem = self.html(body, interaction)
        prompt = interaction.find("prompt")
        if prompt is not None:
            text = self.html(prompt, None)
            if text and not has_block(prompt):
                text = f"<p>{text}</p>"
            stem = f"{stem}\n{text}".strip()
        options = [ParsedOption(ident=ident, content=self.html(choice, None),
                                location=doc.path(choice))
                   for choice, ident in zip(choices, idents, strict=True)]
        if declaration is None:
            problem(interaction, key="qti_no_declaration",
                    declaration=spell("responseDeclaration"), identifier=identifier)
            return None
        processing = next((e for e in doc.root if e.tag == "responseProcessing"), None)
        mode = _template(processing) if processing is not None else ""
        mapping = declaration.find("mapping")
        if mode == "":
            mode = "map_response" if mapping is not None else "match_correct"
        multiple = declaration.get("cardinality") == "multiple"
        if declaration.get("cardinality") is None:
            problem(declaration, key="qti_no_cardinality")
        scoring: dict[str, float] = {}
        found = derived(doc, processing) if mode is None and processing is not None else None
        if found is not None and found.mode == "map_response":
            mode = "map_response"
        if found is not None and found.mode != "map_response":
            kind, scoring = self.apply_derived(found, options, multiple)
        elif mode == "map_response":
            kind = "multiple" if multiple else "weighted"
            scoring = self.apply_mapping(declaration, mapping, options, multiple)
        else:
            kind = "multiple" if multiple else "single"
            keys = self.correct_values(declaration, idents, multiple)
            for option in options:
                option.is_key = option.ident in keys
                if multiple:
                    option.weight = Decimal(1 if option.is_key else 0)
            if multiple:
                # QTI match_correct: the response scores only when it is exactly the correct
                # set; ticking every choice earns nothing.
                scoring = {"min": 0.0, "max": float(len(keys)), "exact": True}
        if multiple:  # how many choices a taker may tick, enforced on save (0: any number)
            for bound, attribute in (("min_choices", "minChoices"), ("max_choices", "maxChoices")):
                raw = (interaction.get(attribute) or "").strip()
                if raw.isdigit() and int(raw) > 0:
                    scoring[bound] = int(raw)
        # The author's option order: shuffle="false" keeps it; fixed="true" choices keep their
        # place while the others are shuffled (form assembly, app/assembly/forms.py).
        meta: dict[str, object] = {}
        if (interaction.get("shuffle") or "").strip().lower() == "false":
            meta["shuffle"] = False
        fixed = [ident for choice, ident in zip(choices, idents, strict=True)
                 if (choice.get("fixed") or "").strip().lower() == "true"]
        if fixed and meta.get("shuffle") is not False:
            meta["fixed"] = fixed
        return ParsedItem(code="", kind=kind, construct="", stem=stem, options=options,
                          scoring=scoring, meta=meta, location=doc.path(doc.root))

    def apply_derived(self, found: qti_rp.Derived, options: list[ParsedOption],
                      multiple: bool) -> tuple[str, dict[str, float]]:
        """Kind and scoring as the evaluated response processing scores the item."""
        if found.mode == "weighted":
            for option in options:
                option.weight = found.weights.get(option.ident, Decimal(0))
            return "weighted", {}
        for option in options:
            option.is_key = option.ident in found.keys
            if multiple:
                option.weight = Decimal(1 if option.is_key else 0)
        if multiple:
            return "multiple", {"min": 0.0, "max": float(len(found.keys)), "exact": True}
        return "single", {}

    def correct_values(self, declaration: Element, idents: list[str], multiple: bool) -> set[str]:
        correct = declaration.find("correctResponse")
        values = [(v.text or "").strip() for v in correct.findall("value")] \
            if correct is not None else []
        if not values:
            holder, value = self.doc.spell("correctResponse"), self.doc.spell("value")
            self.problem(declaration, key="qti_no_correct", holder=holder, value=value)
            return set()
        if not multiple and len(values) > 1:
            self.problem(correct, key="qti_many_correct", count=len(values))
        for value in values:
            if value not in idents:
                self.problem(correct, key="qti_correct_not_choice", value=value,
                             idents=", ".join(idents))
        return set(values)

    def apply_mapping(self, declaration: Element, mapping: Element | None,
                      options: list[ParsedOption], multiple: bool) -> dict[str, float]:
        spell = self.doc.spell
        if mapping is None:
            self.problem(declaration, key="qti_no_mapping", mapping=spell("mapping"),
                         entry=spell("mapEntry"), map_key=spell("mapKey", attribute=True),
                         mapped_value=spell("mappedValue", attribute=True))
            return {}
        default = self.number(mapping, "defaultValue") or Decimal(0)
        mapped: dict[str, Decimal] = {}
        idents = [o.ident for o in options]
        for entry in mapping.findall("mapEntry"):
            key = (entry.get("mapKey") or "").strip()
            if key not in idents:
                self.problem(entry, key="qti_map_key_not_choice",
                             attribute=spell("mapKey", attribute=True), value=key,
                             idents=", ".join(idents))
            value = self.number(entry, "mappedValue")
            if value is not None:
                mapped[key] = value
        for option in options:
            option.weight = mapped.get(option.ident, default)
        scoring = {}
        if multiple:
            for bound, attribute in (("min", "lowerBound"), ("max", "upperBound")):
                value = self.number(mapping, attribute)
                if value is not None:
                    scoring[bound] = float(value)
        return scoring

    def number(self, element: Element, attribute: str) -> Decimal | None:
        raw = element.get(attribute)
        if raw is None:
            return None
        try:
            value = Decimal(raw.strip())
            if value.is_finite():
                return value
        except InvalidOperation:
            pass
        name = self.doc.spell(attribute, attribute=True)
        self.problem(element, key="qti_not_number", name=name, value=raw)
        return None

    def html(self, parent: Element, interaction: Element | None) -> str:
        """The content of ``parent`` as plain HTML, QTI wrappers removed, images resolved."""
        doc = self.doc

        def classify(element: Element) -> str:
            if element is interaction:
                return DROP
            if element in doc.qti:
                if element.tag == "rubricBlock":
                    return UNWRAP if "candidate" in (element.get("view") or "").split() else DROP
                return DROP if element.tag in _DROPPED else UNWRAP
            if element.tag.startswith("{"):
                namespace, local = local_name(element.tag)
                if namespace == MATHML_NS:
                    # Formulas stay formulas (Chromium renders MathML Core); the sanitizer
                    # keeps only the MathML elements and attributes it allows.
                    element.tag = local
                    return KEEP
                if local == "include" and self.passage is not None:
                    self.passage(element, element.get("href") or "")
                return DROP if local == "include" else UNWRAP
            if self.passage is not None and qti_passage.is_passage_object(element):
                self.passage(element, element.get("data") or "")
                return DROP
            if element.tag == "object" and _image_object(element):
                alt = "".join(element.itertext()).strip()
                attributes = {"src": element.get("data") or "", "alt": alt}
                attributes.update({k: v for k in ("width", "height")
                                   if (v := element.get(k))})
                element.tag, element.text = "img", None
                element.attrib.clear()
                element.attrib.update(attributes)
            if element.tag == "img":
                self.image(element)
            return KEEP

        return serialize_children(parent, classify).strip()

    def image(self, element: Element) -> None:
        src = (element.get("src") or "").strip()
        if not src:
            self.problem(element, key="qti_image_no_src")
            return
        if src.lower().startswith("data:"):
            self.problem(element, key="qti_image_data", src=src[:40])
            return
        if REMOTE.match(src):
            self.problem(element, key="qti_image_remote", src=src[:100])
            return
        relative = unquote(src.split("#", 1)[0].split("?", 1)[0])
        target = posixpath.normpath(posixpath.join(posixpath.dirname(self.path), relative))
        if relative.startswith("/") or target == ".." or target.startswith("../"):
            self.problem(element, key="qti_image_outside", src=src)
            return
        data = self.files.get(target)
        if data is None:
            if len(self.files) == 1:
                self.problem(element, key="qti_image_missing_single", src=src, target=target)
            else:
                self.problem(element, key="qti_image_missing", src=src, target=target)
            return
        element.set("src", f"media/{self.media_name(target, data)}")
