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
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, EntitiesForbidden

from app.bank.parsed import ParsedItem, ParsedPassage, Phrase, Problem, problem
from app.bank.qti_export import export_qti3_package
from app.bank.qti_item import (
    QTI_NAMESPACES,
    Doc,
    ItemReader,
    element_path,
    local_name,
    parent_map,
    unsupported,
)
from app.bank.qti_passage import PassageFiles, media_element

__all__ = ["QtiResult", "export_qti3_package", "parse_qti_files"]

ITEM_RESOURCE = re.compile(r"^imsqti_(?:apip)?item_xmlv(?:2p1|2p2|3p0)$")
CONSTRUCT_KEYWORD = re.compile(r"^\s*cact:construct\s*=\s*(\S+)\s*$")
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
XHTML = "{http://www.w3.org/1999/xhtml}"


@dataclass
class QtiResult:
    items: list[ParsedItem]
    # flat media name ("fig-01.png") -> bytes, as referenced by rewritten <img src="media/NAME">
    media: dict[str, bytes]
    problems: list[Problem]  # errors: the whole import will be refused if any
    skipped: list[Problem]  # unsupported items left out because skip_unsupported=True
    passages: dict[str, ParsedPassage]  # code -> passage, of the items read


def parse_qti_files(files: dict[str, bytes], *, source: str, default_construct: str | None,
                    skip_unsupported: bool) -> QtiResult:
    """Items of a content package (every file, by archive path) or of one item file.

    With a manifest, only the item resources it lists are read (tests, stylesheets ... are
    ignored); without one, every ``.xml`` file is taken as an item. Items with any problem are
    left out of ``items``; unsupported ones go to ``skipped`` or ``problems``."""
    reader = _Reader(files, source, default_construct, skip_unsupported)
    reader.run()
    # An item whose passage could not be read is left out like an item with a problem of its
    # own: the passage's problems are reported once, where they are, and nothing of it is
    # checked again as if it had been read.
    broken = {reader.passage_files.codes[path] for path in reader.broken_passages
              if path in reader.passage_files.codes}
    reader.items = [item for item in reader.items if item.passage not in broken]
    used = {item.passage for item in reader.items if item.passage}
    passages = {code: p for code, p in reader.passage_files.passages.items() if code in used}
    return QtiResult(reader.items, reader.media, reader.problems, reader.skipped, passages)


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
        self.passage_files = PassageFiles(files)
        self.broken_passages: set[str] = set()  # passage files whose reading had problems

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
                self.problems.append(problem(self.source, "", "", key="qti_no_item"))
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
            self.problems.append(problem(label, f"line {line}, column {column + 1}", "",
                                         key="xml_not_well_formed", reason=reason))
        except DefusedXmlException as exc:
            what = (Phrase(key="xml_entity", params={"name": exc.name})
                    if isinstance(exc, EntitiesForbidden)
                    else Phrase(key="xml_dtd", params={"kind": type(exc).__name__}))
            self.problems.append(problem(label, "", "", key="xml_unsafe", what=what))
        return None

    # -- manifest ------------------------------------------------------------------------------

    def manifest_entries(self, manifest: str) -> list[tuple[str, str | None]]:
        """(item path, construct keyword) for each item resource, in manifest order."""
        root = self.read_xml(manifest)
        if root is None:
            return []
        label = self.label(manifest)
        parents = parent_map(root)

        def where(element: Element) -> str:
            return element_path(element, parents, lambda e: local_name(e.tag)[1])

        if local_name(root.tag)[1] != "manifest":
            self.problems.append(problem(label, where(root), "", key="manifest_root"))
            return []
        entries: list[tuple[str, str | None]] = []
        for resource in root.iter():
            if local_name(resource.tag)[1] != "resource":
                continue
            if not ITEM_RESOURCE.match(resource.get("type", "")):
                continue  # assessment tests, stylesheets, shared images ...
            href = resource.get("href", "").strip()
            if not href:
                self.problems.append(problem(label, where(resource), "",
                                             key="resource_no_href"))
                continue
            base = posixpath.dirname(manifest)
            for holder in (parents.get(resource), resource):
                xml_base = holder.get(XML_BASE) if holder is not None else None
                if xml_base:
                    base = posixpath.join(base, xml_base)
            path = posixpath.normpath(posixpath.join(base, unquote(href)))
            if path not in self.files:
                self.problems.append(problem(label, where(resource), "",
                                             key="resource_missing_file", href=href, path=path))
                continue
            if any(path == seen for seen, _ in entries):
                continue
            constructs = sorted(self.keywords(resource))
            if len(constructs) > 1:
                self.problems.append(problem(label, where(resource), "",
                                             key="resource_constructs",
                                             keywords=", ".join(constructs)))
            entries.append((path, constructs[0] if constructs else None))
        if not entries and not any(p.file == label for p in self.problems):
            self.problems.append(problem(label, where(root), "", key="manifest_no_items"))
        return entries

    @staticmethod
    def keywords(resource: Element) -> set[str]:
        found = set()
        for metadata in resource:
            if local_name(metadata.tag)[1] != "metadata":
                continue
            for keyword in metadata.iter():
                if local_name(keyword.tag)[1] == "keyword":
                    for text in keyword.itertext():
                        if match := CONSTRUCT_KEYWORD.match(text):
                            found.add(match.group(1))
        return found

    # -- items ---------------------------------------------------------------------------------

    def read_item(self, path: str, root: Element, construct: str | None) -> None:
        label = self.label(path)
        namespace, local = local_name(root.tag)
        version = QTI_NAMESPACES.get(namespace)
        if version and local in ("assessmentTest", "qti-assessment-test"):
            return  # a test next to its items (package without manifest): not an item
        if version is None or local not in ("assessmentItem", "qti-assessment-item"):
            if namespace:
                self.problems.append(problem(label, f"/{local}", "", key="not_qti_item_in_ns",
                                             element=local, namespace=namespace))
            else:
                self.problems.append(problem(label, f"/{local}", "", key="not_qti_item",
                                             element=local))
            return
        doc = Doc(root, version)
        code = (root.get("identifier") or "").strip()
        problems: list[Problem] = []

        def add(element: Element, *, key: str, **params: object) -> None:
            problems.append(problem(label, doc.path(element), code, key=key, **params))

        reason_at = unsupported(doc)
        body = next((e for e in doc.root if e.tag == "itemBody"), None)
        media = media_element(body) if body is not None and not reason_at else None
        if media is not None:
            reason_at = media, Phrase(key="qti_uses_media", params={"element": doc.name(media)})
        if reason_at:
            element, reason = reason_at
            entry = problem(label, doc.path(element), code, key="qti_unsupported",
                            reason=reason)
            (self.skipped if self.skip_unsupported else self.problems).append(entry)
            return
        if not code:
            add(root, key="qti_no_identifier")
        elif code in self.seen:
            add(root, key="qti_identifier_twice", code=code, first=self.seen[code])
        else:
            self.seen[code] = label
        construct = construct or self.default_construct
        if not construct:
            add(root, key="qti_no_construct")
        passages: list[str] = []

        def passage(element: Element, href: str) -> None:
            report = lambda **params: add(element, **params)  # noqa: E731
            target = self.passage_files.resolve(path, href, report)
            found = target and self.passage_files.load(
                target, element.get("identifier") or "", report,
                lambda at, body, version: self.passage_html(at, body, version, code))
            if found and found not in passages:
                passages.append(found)

        for ref in (e for e in doc.root if e.tag == "assessmentStimulusRef"):
            passage(ref, ref.get("href") or "")
        item = ItemReader(doc, path, add, self.files, self.media_name, passage).read()
        if len(passages) > 1:
            add(doc.root, key="qti_many_passages", codes=", ".join(passages))
        if item is None or problems:
            self.problems.extend(problems)
            return
        item.code, item.construct, item.source = code, construct or "", path
        item.passage = passages[0] if passages else None
        title = (root.get("title") or "").strip()
        if title and title != code:  # the exporter writes the code where QTI needs a title
            item.meta["title"] = title
        self.items.append(item)

    def passage_html(self, path: str, body: Element, version: str, item: str) -> str:
        """A passage's body as HTML, read like an item's text (images stored as media, MathML
        kept); problems are located in the passage's own file."""
        for element in body.iter():  # XHTML pages: plain HTML names
            if isinstance(element.tag, str) and element.tag.startswith(XHTML):
                element.tag = element.tag[len(XHTML):]
        doc = Doc(body, version)

        def add(element: Element, *, key: str, **params: object) -> None:
            self.broken_passages.add(path)
            self.problems.append(problem(self.label(path), doc.path(element), item, key=key,
                                         **params))

        return ItemReader(doc, path, add, self.files, self.media_name).html(body, None)

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
