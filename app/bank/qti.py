"""QTI choice items in, QTI 3.0 content packages out.

Other tools (TAO, Moodle, Inspera, ...) exchange items as QTI, so a bank can be started from
their exports. Only what CACT can score exactly is read: one choiceInteraction scored by the
match_correct or map_response template (or equivalent rules). Everything else is reported per
item, with the element where it happens, never dropped silently. QTI 2.1, 2.2 and 3.0 are read
through one code path: 3.0's kebab-case ``qti-`` names are mapped to the 2.x camelCase names.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.bank.parsed import ParsedItem, ParsedOption, Problem
from app.bank.qti_export import export_qti3_package
from app.bank.qti_html import DROP, KEEP, UNWRAP, has_block, serialize_children

__all__ = ["QtiResult", "export_qti3_package", "parse_qti_files"]

QTI_NAMESPACES = {
    "http://www.imsglobal.org/xsd/imsqti_v2p1": "2.1",
    "http://www.imsglobal.org/xsd/imsqti_v2p2": "2.2",
    "http://www.imsglobal.org/xsd/imsqtiasi_v3p0": "3.0",
}
ITEM_RESOURCE = re.compile(r"^imsqti_(?:apip)?item_xmlv(?:2p1|2p2|3p0)$")
CONSTRUCT_KEYWORD = re.compile(r"^\s*cact:construct\s*=\s*(\S+)\s*$")
REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
SKIP_HINT = ("which is not supported; tick 'skip unsupported items' (--skip-unsupported) to "
             "import the rest without it")
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


@dataclass
class QtiResult:
    items: list[ParsedItem]
    # flat media name ("fig-01.png") -> bytes, as referenced by rewritten <img src="media/NAME">
    media: dict[str, bytes]
    problems: list[Problem]  # errors: the whole import will be refused if any
    skipped: list[Problem]  # unsupported items left out because skip_unsupported=True


def parse_qti_files(files: dict[str, bytes], *, source: str, default_construct: str | None,
                    skip_unsupported: bool) -> QtiResult:
    """Items of a content package (every file, by archive path) or of one item file.

    With a manifest, only the item resources it lists are read (tests, stylesheets ... are
    ignored); without one, every ``.xml`` file is taken as an item. Items with any problem are
    left out of ``items``; unsupported ones go to ``skipped`` or ``problems``."""
    reader = _Reader(files, source, default_construct, skip_unsupported)
    reader.run()
    return QtiResult(reader.items, reader.media, reader.problems, reader.skipped)


def _local(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local


def _camel(kebab: str) -> str:
    first, *rest = kebab.split("-")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _element_path(element: Element, parents: dict[Element, Element],
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


def _parent_map(root: Element) -> dict[Element, Element]:
    return {child: parent for parent in root.iter() for child in parent}


class _Doc:
    """One item file with version-neutral names: QTI elements get their 2.x camelCase tag
    (and attributes), HTML elements keep theirs, and the original spelling is kept for the
    locations shown to the author."""

    def __init__(self, root: Element, version: str) -> None:
        self.root = root
        self.v3 = version == "3.0"
        self.parents = _parent_map(root)
        self.original: dict[Element, str] = {}
        self.qti: set[Element] = set()
        for element in root.iter():
            namespace, local = _local(element.tag)
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
        return _element_path(element, self.parents, lambda e: self.original.get(e, e.tag))

    def name(self, element: Element) -> str:
        return self.original.get(element, element.tag)


class _Reader:
    def __init__(self, files: dict[str, bytes], source: str, default_construct: str | None,
                 skip_unsupported: bool) -> None:
        self.files = files
        self.source = source
        self.default_construct = default_construct
        self.skip_unsupported = skip_unsupported
        self.items: list[ParsedItem] = []
        self.media: dict[str, bytes] = {}
        self.media_names: dict[str, str] = {}  # package path -> media name
        self.problems: list[Problem] = []
        self.skipped: list[Problem] = []
        self.seen: dict[str, str] = {}  # item identifier -> file it was first found in

    def label(self, path: str) -> str:
        single = len(self.files) == 1 and path == PurePosixPath(self.source).name
        return self.source if single or path == self.source else f"{self.source}:{path}"

    def run(self) -> None:
        manifests = sorted((p for p in self.files if PurePosixPath(p).name == "imsmanifest.xml"),
                           key=lambda p: (p.count("/"), p))
        if manifests:
            entries = self.manifest_entries(manifests[0])
        else:
            entries = [(path, None) for path in sorted(self.files)
                       if path.lower().endswith(".xml") and not path.startswith("__MACOSX/")
                       and not PurePosixPath(path).name.startswith("._")]
            if not entries:
                self.problems.append(Problem(self.source, "", "", "no QTI item found: upload "
                                             "an item .xml file or a content package (zip "
                                             "with imsmanifest.xml)"))
        for path, construct in entries:
            root = self.read_xml(path)
            if root is not None:
                self.read_item(path, root, construct)

    def read_xml(self, path: str) -> Element | None:
        label = self.label(path)
        try:
            return SafeET.fromstring(self.files[path])
        except SafeET.ParseError as exc:
            line, column = exc.position
            reason = re.sub(r": line \d+, column \d+$", "", str(exc))
            self.problems.append(Problem(label, f"line {line}, column {column + 1}", "",
                                         f"not well-formed XML ({reason}); correct the file "
                                         "there or export it again"))
        except DefusedXmlException as exc:
            self.problems.append(Problem(label, "", "", f"refused for safety: the file declares "
                                         f"XML entities or external references ({exc}); export "
                                         "it again without a DOCTYPE or entity declarations"))
        return None

    # -- manifest ------------------------------------------------------------------------------

    def manifest_entries(self, manifest: str) -> list[tuple[str, str | None]]:
        """(item path, construct keyword) for each item resource, in manifest order."""
        root = self.read_xml(manifest)
        if root is None:
            return []
        label = self.label(manifest)
        parents = _parent_map(root)

        def where(element: Element) -> str:
            return _element_path(element, parents, lambda e: _local(e.tag)[1])

        if _local(root.tag)[1] != "manifest":
            self.problems.append(Problem(label, where(root), "", "imsmanifest.xml has no "
                                         "<manifest> root; export the content package again"))
            return []
        entries: list[tuple[str, str | None]] = []
        for resource in root.iter():
            if _local(resource.tag)[1] != "resource":
                continue
            if not ITEM_RESOURCE.match(resource.get("type", "")):
                continue  # assessment tests, stylesheets, shared images ...
            href = resource.get("href", "").strip()
            if not href:
                self.problems.append(Problem(label, where(resource), "", "an item resource has "
                                             "no href; add the path of its item file"))
                continue
            base = posixpath.dirname(manifest)
            for holder in (parents.get(resource), resource):
                if holder is not None and holder.get(XML_BASE):
                    base = posixpath.join(base, holder.get(XML_BASE))
            path = posixpath.normpath(posixpath.join(base, unquote(href)))
            if path not in self.files:
                self.problems.append(Problem(label, where(resource), "", f"the manifest lists "
                                             f"{href} but the package has no file {path}; add "
                                             "it or remove the resource"))
                continue
            if any(path == seen for seen, _ in entries):
                continue
            constructs = sorted(self.keywords(resource))
            if len(constructs) > 1:
                self.problems.append(Problem(label, where(resource), "", "the resource has "
                                             "several cact:construct keywords ("
                                             f"{', '.join(constructs)}); keep one"))
            entries.append((path, constructs[0] if constructs else None))
        if not entries and not any(p.file == label for p in self.problems):
            self.problems.append(Problem(label, where(root), "", "the manifest lists no QTI "
                                         "item (resources of type imsqti_item_xmlv2p1, v2p2 or "
                                         "v3p0); export the items as a QTI content package"))
        return entries

    @staticmethod
    def keywords(resource: Element) -> set[str]:
        found = set()
        for metadata in resource:
            if _local(metadata.tag)[1] != "metadata":
                continue
            for keyword in metadata.iter():
                if _local(keyword.tag)[1] == "keyword":
                    for text in keyword.itertext():
                        if match := CONSTRUCT_KEYWORD.match(text):
                            found.add(match.group(1))
        return found

    # -- items ---------------------------------------------------------------------------------

    def read_item(self, path: str, root: Element, construct: str | None) -> None:
        label = self.label(path)
        namespace, local = _local(root.tag)
        version = QTI_NAMESPACES.get(namespace)
        if version is None or local not in ("assessmentItem", "qti-assessment-item"):
            found = f"<{local}>" + (f" in namespace {namespace}" if namespace else "")
            self.problems.append(Problem(label, f"/{local}", "", f"not a QTI 2.1, 2.2 or 3.0 "
                                         f"assessment item ({found}); export the item as QTI "
                                         "2.1, 2.2 or 3.0"))
            return
        doc = _Doc(root, version)
        code = (root.get("identifier") or "").strip()
        problems: list[Problem] = []

        def problem(element: Element, message: str) -> None:
            problems.append(Problem(label, doc.path(element), code, message))

        unsupported = self.unsupported(doc)
        if unsupported:
            element, reason = unsupported
            entry = Problem(label, doc.path(element), code, f"{reason}, {SKIP_HINT}")
            (self.skipped if self.skip_unsupported else self.problems).append(entry)
            return
        if not code:
            problem(root, "the item has no identifier; add identifier=\"...\" (it becomes the "
                    "item code)")
        elif code in self.seen:
            problem(root, f"item identifier {code} is used again (first in {self.seen[code]}); "
                    "give every item its own identifier")
        else:
            self.seen[code] = label
        construct = construct or self.default_construct
        if not construct:
            problem(root, "no construct: give a default construct at import, or add the "
                    "keyword cact:construct=<code> to the item's resource in imsmanifest.xml")
        item = _ItemReader(self, doc, path, problem).read()
        if item is None or problems:
            self.problems.extend(problems)
            return
        item.code, item.construct, item.source = code, construct or "", path
        title = (root.get("title") or "").strip()
        if title and title != code:  # the exporter writes the code where QTI needs a title
            item.meta["title"] = title
        self.items.append(item)

    @staticmethod
    def unsupported(doc: _Doc) -> tuple[Element, str] | None:
        """The first reason CACT cannot score the item as its author meant, if any."""
        body = next((e for e in doc.root if e.tag == "itemBody"), None)
        interactions = [e for e in (body.iter() if body is not None else ())
                        if e in doc.qti and e.tag.endswith("Interaction")]
        others = [e for e in interactions if e.tag != "choiceInteraction"]
        if others:
            names = ", ".join(dict.fromkeys(doc.name(e) for e in others))
            return others[0], f"the item uses {names}"
        if body is not None and not interactions:
            return body, "the item has no interaction (only choice items can be imported)"
        if len(interactions) > 1:
            return interactions[1], (f"the item has {len(interactions)} choice interactions "
                                     "(one per item can be imported)")
        processing = next((e for e in doc.root if e.tag == "responseProcessing"), None)
        if processing is not None and _template(processing) is None:
            template = processing.get("template")
            what = (f"the response processing template {template}" if template
                    else "custom response processing")
            return processing, f"the item uses {what}"
        if interactions:
            identifier = interactions[0].get("responseIdentifier")
            for declaration in doc.root:
                if (declaration.tag == "responseDeclaration"
                        and declaration.get("identifier") == identifier
                        and declaration.get("cardinality") not in ("single", "multiple")):
                    return declaration, (f"the response has cardinality "
                                         f"{declaration.get('cardinality')!r}")
        return None

    def media_name(self, path: str, data: bytes) -> str:
        """A flat name the sanitizer accepts, the same for the same file and distinct for
        different files that share a base name."""
        if path in self.media_names:
            return self.media_names[path]
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(path).name).strip("-")
        if not base[:1].isalnum():
            base = "image" + base
        stem, dot, suffix = base.rpartition(".") if "." in base else (base, "", "")
        name = f"{stem[:100]}{dot}{suffix[:10]}"
        if name in self.media and self.media[name] != data:
            name = f"{stem[:100]}-{hashlib.sha256(data).hexdigest()[:8]}{dot}{suffix[:10]}"
        self.media[name] = data
        self.media_names[path] = name
        return name


def _template(processing: Element) -> str | None:
    """"match_correct", "map_response", "" (no processing at all) or None (anything else)."""
    template = (processing.get("template") or "").strip()
    if template:
        name = template.rstrip("/").rsplit("/", 1)[-1]
        name = name[:-4] if name.lower().endswith(".xml") else name
        return name if name in _RULES else None
    names = {e.tag for e in processing.iter()} - {processing.tag}
    if not names:
        return ""
    for template_name, allowed in _RULES.items():
        if names <= allowed and names & {"correct", "mapResponse"}:
            return template_name
    return None


class _ItemReader:
    """The supported item (one choiceInteraction, single or multiple) as a ParsedItem."""

    def __init__(self, reader: _Reader, doc: _Doc, path: str,
                 problem: Callable[[Element, str], None]) -> None:
        self.reader, self.doc, self.path, self.problem = reader, doc, path, problem

    def read(self) -> ParsedItem | None:
        doc, problem = self.doc, self.problem
        body = next((e for e in doc.root if e.tag == "itemBody"), None)
        if body is None:
            problem(doc.root, "the item has no itemBody; add the item text and its "
                    "choiceInteraction")
            return None
        interaction = next(e for e in body.iter() if e in doc.qti and e.tag == "choiceInteraction")
        identifier = interaction.get("responseIdentifier", "")
        declaration = next((e for e in doc.root if e.tag == "responseDeclaration"
                            and e.get("identifier") == identifier), None)
        choices = [e for e in interaction if e.tag == "simpleChoice"]
        idents = [(c.get("identifier") or "").strip() for c in choices]
        for position, (choice, ident) in enumerate(zip(choices, idents, strict=True)):
            if not ident:
                problem(choice, "a simpleChoice has no identifier; add identifier=\"A\" ...")
            elif ident in idents[:position]:
                problem(choice, f"choice identifier {ident} is used twice; make them differ")
        if len(choices) < 2:
            problem(interaction, f"the choice interaction has {len(choices)} choice(s); add at "
                    "least two simpleChoice elements")
        if declaration is None:
            problem(interaction, f"no responseDeclaration with identifier {identifier!r}; "
                    "declare the response the choiceInteraction refers to")
            return None
        processing = next((e for e in doc.root if e.tag == "responseProcessing"), None)
        mode = _template(processing) if processing is not None else ""
        mapping = declaration.find("mapping")
        if not mode:
            mode = "map_response" if mapping is not None else "match_correct"
        options = [ParsedOption(ident=ident, content=self.html(choice, None),
                                location=doc.path(choice))
                   for choice, ident in zip(choices, idents, strict=True)]
        multiple = declaration.get("cardinality") == "multiple"
        scoring: dict[str, float] = {}
        if mode == "map_response":
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
                scoring = {"min": 0.0, "max": float(len(keys))}
        stem = self.html(body, interaction)
        prompt = interaction.find("prompt")
        if prompt is not None:
            text = self.html(prompt, None)
            if text and not has_block(prompt):
                text = f"<p>{text}</p>"
            stem = f"{stem}\n{text}".strip()
        return ParsedItem(code="", kind=kind, construct="", stem=stem, options=options,
                          scoring=scoring, location=doc.path(doc.root))

    def correct_values(self, declaration: Element, idents: list[str], multiple: bool) -> set[str]:
        correct = declaration.find("correctResponse")
        values = [(v.text or "").strip() for v in correct.findall("value")] \
            if correct is not None else []
        if not values:
            self.problem(declaration, "no correct answer: add <correctResponse><value>ID"
                         "</value></correctResponse> naming the correct choice")
            return set()
        if not multiple and len(values) > 1:
            self.problem(correct, f"{len(values)} correct values for a single-choice response; "
                         "keep one or make the cardinality multiple")
        for value in values:
            if value not in idents:
                self.problem(correct, f"the correct response {value!r} is not a choice "
                             f"identifier ({', '.join(idents)}); correct it")
        return set(values)

    def apply_mapping(self, declaration: Element, mapping: Element | None,
                      options: list[ParsedOption], multiple: bool) -> dict[str, float]:
        if mapping is None:
            self.problem(declaration, "the response is scored by map_response but has no "
                         "mapping; add <mapping> with a mapEntry (mapKey, mappedValue) per choice")
            return {}
        default = self.number(mapping, "defaultValue") or Decimal(0)
        mapped: dict[str, Decimal] = {}
        idents = [o.ident for o in options]
        for entry in mapping.findall("mapEntry"):
            key = (entry.get("mapKey") or "").strip()
            if key not in idents:
                self.problem(entry, f"mapKey {key!r} is not a choice identifier "
                             f"({', '.join(idents)}); correct it or remove the entry")
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
        self.problem(element, f"{attribute}={raw!r} is not a number; write it like 1 or 0.5")
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
                return DROP if _local(element.tag)[1] == "include" else UNWRAP
            if element.tag == "object" and ((element.get("type") or "").startswith("image/")
                                            or element.get("data")) and len(element) == 0:
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
            self.problem(element, "an image has no src; add the path of the image file")
            return
        if REMOTE.match(src):
            self.problem(element, f"image {src[:100]} is a remote address; put the image file "
                         "into the package and refer to it by a relative path")
            return
        relative = unquote(src.split("#", 1)[0].split("?", 1)[0])
        target = posixpath.normpath(posixpath.join(posixpath.dirname(self.path), relative))
        if relative.startswith("/") or target == ".." or target.startswith("../"):
            self.problem(element, f"image {src} points outside the package; use a path "
                         "relative to the item file")
            return
        data = self.reader.files.get(target)
        if data is None:
            single = len(self.reader.files) == 1
            self.problem(element, f"image {src} is missing: the package has no file {target}; "
                         + ("upload a content package (zip with imsmanifest.xml) that contains "
                            "it" if single else "add it to the zip or correct the src"))
            return
        element.set("src", f"media/{self.reader.media_name(target, data)}")
