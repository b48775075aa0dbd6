"""The text a QTI item is asked about, read as a CACT passage.

QTI keeps a reading passage apart from its items in three ways, all read here:
- a shared stimulus: ``qti-assessment-stimulus-ref`` (QTI 3; ``assessmentStimulusRef`` in 2.2)
  naming a ``qti-assessment-stimulus`` file, whose ``qti-stimulus-body`` is the passage;
- an HTML page embedded in the item body: ``<object type="text/html" data="story.html">``
  (QTI 2.x, e.g. 1EdTech's Orkney items);
- an XInclude of a fragment: ``<xi:include href="passage.xml"/>``.

One file is one passage, however many items refer to it: the items of a package that share a
stimulus share one stored passage, shown beside each of them. Images in the passage are
stored as bank media like the item's own. Audio and video are not delivered (a lab PC may have
no speakers, and a taker cannot be given the same playback conditions): an item that needs
them is refused by name, see :func:`media_element`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import unquote
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.bank.parsed import ParsedPassage
from app.bank.qti_html import html_to_element

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
MEDIA_SUFFIXES = (".mp3", ".mp4", ".m4a", ".m4v", ".ogg", ".oga", ".ogv", ".wav", ".webm",
                  ".mov", ".avi", ".mpeg", ".mpg", ".aac", ".flac")
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
_CODE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

# (message key, params) of a problem, located by the caller
Report = Callable[..., None]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def is_passage_object(element: Element) -> bool:
    """An ``<object>`` that embeds an HTML page (not an image, not a media file)."""
    if element.tag != "object":
        return False
    kind = (element.get("type") or "").split(";", 1)[0].strip().lower()
    data = (element.get("data") or "").lower().split("?", 1)[0]
    return kind in HTML_TYPES or (not kind and data.endswith(HTML_SUFFIXES))


def is_include(element: Element) -> bool:
    return element.tag == f"{{{XINCLUDE_NS}}}include"


def media_element(body: Element) -> Element | None:
    """The first audio or video in an item body (an HTML5 element in any namespace, or an
    ``<object>`` of an audio/video type or file), if any."""
    for element in body.iter():
        if not isinstance(element.tag, str):
            continue
        name = _local(element.tag)
        if name in ("audio", "video"):
            return element
        if name == "object":
            kind = (element.get("type") or "").lower()
            data = (element.get("data") or "").lower().split("?", 1)[0]
            if kind.startswith(("audio/", "video/")) or data.endswith(MEDIA_SUFFIXES):
                return element
    return None


def _decode(data: bytes) -> str:
    """HTML pages from authoring tools are UTF-8 or, older ones, Windows-1252 (a "£" as one
    byte in 1EdTech's own Orkney page)."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


class PassageFiles:
    """The passages of one package, read once per file.

    ``read_body`` turns a passage's body element into sanitizable HTML with its images stored
    (it is the item reader's own HTML walk, run on the passage file)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.passages: dict[str, ParsedPassage] = {}  # code -> passage
        self.codes: dict[str, str] = {}  # package path -> code

    def resolve(self, item_path: str, href: str, report: Report) -> str | None:
        """The package path ``href`` (relative to the item file) names, or None (reported)."""
        href = href.strip()
        if not href:
            report(key="qti_passage_no_href")
            return None
        if REMOTE.match(href):
            report(key="qti_passage_remote", href=href[:100])
            return None
        relative = unquote(href.split("#", 1)[0].split("?", 1)[0])
        target = posixpath.normpath(posixpath.join(posixpath.dirname(item_path), relative))
        if relative.startswith("/") or target == ".." or target.startswith("../"):
            report(key="qti_passage_outside", href=href)
            return None
        if target not in self.files:
            report(key="qti_passage_missing", href=href, target=target)
            return None
        return target

    def load(self, target: str, identifier: str, report: Report,
             read_body: Callable[[str, Element, str], str]) -> str | None:
        """The code of the passage in file ``target`` (read now if it is new), or None."""
        if target in self.codes:
            return self.codes[target]
        found = self._body(target, report)
        if found is None:
            return None
        body, title, version, own_id = found
        html = read_body(target, body, version)
        code = self._code(own_id or identifier or PurePosixPath(target).stem)
        self.passages[code] = ParsedPassage(code=code, title=title.strip()[:200],
                                            content=html, location="/", source=target)
        self.codes[target] = code
        return code

    def _code(self, wanted: str) -> str:
        base = _CODE_CHARS.sub("-", wanted).strip("-.")[:56] or "passage"
        if not base[0].isalnum():
            base = "P" + base
        code, n = base, 1
        while code in self.passages:
            n += 1
            code = f"{base}-{n}"
        return code

    def _body(self, target: str, report: Report
              ) -> tuple[Element, str, str, str] | None:
        """(body element, title, QTI version of the names inside, the file's own identifier)."""
        data = self.files[target]
        if target.lower().endswith(HTML_SUFFIXES):
            root = html_to_element(_decode(data))
            title = next((("".join(e.itertext())) for e in root.iter("title")), "")
            body = next(root.iter("body"), root)
            for head in list(root.iter("head")):
                for parent in root.iter():
                    if head in list(parent):
                        parent.remove(head)
            return body, title, "2.1", ""
        try:
            root = SafeET.fromstring(data)
        except (SafeET.ParseError, DefusedXmlException) as exc:
            report(key="qti_passage_unreadable", target=target, reason=str(exc)[:200])
            return None
        name = _local(root.tag)
        namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
        version = "3.0" if namespace.endswith("v3p0") else "2.1"
        if name in ("qti-assessment-stimulus", "assessmentStimulus"):
            found: Element | None = next(
                (e for e in root if _local(e.tag) in ("qti-stimulus-body", "stimulusBody")),
                None)
            if found is None:
                report(key="qti_passage_no_body", target=target)
                return None
            return found, root.get("title") or "", version, root.get("identifier") or ""
        if name == "html":
            body = next((e for e in root if _local(e.tag) == "body"), root)
            title = next(("".join(e.itertext()) for e in root.iter()
                          if _local(e.tag) == "title"), "")
            return body, title, version, ""
        # A bare fragment (an XInclude'd <div>, say): the element itself is the passage.
        holder = Element("fragment")
        holder.append(root)
        return holder, "", version, ""
