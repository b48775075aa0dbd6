"""HTML fragments between the two worlds QTI lives in: item text is stored as HTML (void
elements unclosed, no namespaces), while a QTI item embeds it as XML. Reading and writing share
one serialiser, so a stem that goes out to QTI and comes back is the same string."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from html import escape
from html.parser import HTMLParser
from xml.etree.ElementTree import Element, SubElement

VOID_ELEMENTS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})
BLOCK_ELEMENTS = frozenset({
    "address", "blockquote", "div", "dl", "fieldset", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "ol", "p", "pre", "section", "table", "ul",
})
# Names that are safe to write as un-prefixed XML elements and attributes.
_TAG_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Characters XML 1.0 cannot carry at all; HTML tolerates them, so they are dropped on export.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# What the serialiser does with an element: write it, leave it out (with its content), or
# write only its content.
KEEP, DROP, UNWRAP = "keep", "drop", "unwrap"


def xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


class _TreeBuilder(HTMLParser):
    """html.parser events to an ElementTree, because ElementTree then writes well-formed XML
    whatever the input's void elements, entities or unclosed tags look like."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("fragment")
        self.stack = [self.root]

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element | None:
        if not _TAG_NAME.match(tag):
            return None  # unknown markup: its text stays, the tag goes
        attributes = {name: xml_text(value if value is not None else name)
                      for name, value in attrs
                      if _ATTR_NAME.match(name) and not name.startswith("xmlns")}
        return SubElement(self.stack[-1], tag, attributes)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = self._element(tag, attrs)
        if element is not None and tag not in VOID_ELEMENTS:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return  # an end tag that closes nothing open is ignored

    def handle_data(self, data: str) -> None:
        parent = self.stack[-1]
        data = xml_text(data)
        if len(parent):
            parent[-1].tail = (parent[-1].tail or "") + data
        else:
            parent.text = (parent.text or "") + data


def html_to_element(html: str) -> Element:
    """The fragment as children (and text) of a ``<fragment>`` element."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def serialize_children(parent: Element, classify: Callable[[Element], str] | None = None,
                       name: Callable[[Element], str] | None = None) -> str:
    """The content of ``parent`` as HTML (void elements unclosed, attributes in source order).
    ``classify`` decides per element (KEEP, DROP, UNWRAP); ``name`` gives the tag to write."""
    out: list[str] = []
    _write(out, parent.text, parent, classify, name)
    return "".join(out)


def _write(out: list[str], text: str | None, parent: Element,
           classify: Callable[[Element], str] | None,
           name: Callable[[Element], str] | None) -> None:
    if text:
        out.append(escape(text, quote=False))
    for child in _elements(parent):
        action = classify(child) if classify else KEEP
        if action == KEEP:
            tag = name(child) if name else child.tag
            attributes = "".join(f' {key}="{escape(value, quote=True)}"'
                                 for key, value in child.attrib.items()
                                 if "{" not in key and not key.startswith("xmlns"))
            out.append(f"<{tag}{attributes}>")
            if tag not in VOID_ELEMENTS:
                _write(out, child.text, child, classify, name)
                out.append(f"</{tag}>")
        elif action == UNWRAP:
            _write(out, child.text, child, classify, name)
        if child.tail:
            out.append(escape(child.tail, quote=False))


def _elements(parent: Element) -> Iterable[Element]:
    # Comments and processing instructions are not elements a reader should see.
    return (child for child in parent if isinstance(child.tag, str))


def normalize_html(html: str) -> str:
    """The comparison form of a fragment: re-serialised and with whitespace runs collapsed.
    Applied to both sides when checking that an export reads back to the same text."""
    return re.sub(r"\s+", " ", serialize_children(html_to_element(html))).strip()


def has_block(parent: Element) -> bool:
    return any(child.tag in BLOCK_ELEMENTS for child in _elements(parent))
