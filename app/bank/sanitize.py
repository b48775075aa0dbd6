"""HTML of imported items: what may reach a test taker's browser.

Item text comes from outside (authors, other tools, QTI exports), so it is cleaned with nh3
(the ammonia sanitizer) on import, before it is ever stored: a small formatting vocabulary,
no scripts, styles, event handlers, links or forms, and images only from the bank's own media
(``media/NAME``), which the server serves itself.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = {
    "p", "br", "strong", "b", "em", "i", "u", "sub", "sup", "small", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td", "caption", "img", "span", "div",
    "blockquote", "code", "pre", "hr", "ruby", "rt", "rp", "bdi", "bdo",
}
# Text direction (Arabic or Jawi passages in a language item) on the block and inline elements.
DIRECTIONAL = ("p", "span", "div", "td", "th", "li", "blockquote", "bdi", "bdo")
# MathML Core presentation elements (formulas in numerical items), without the ones that carry
# foreign content or are known routes for namespace confusion (annotation-xml, mglyph,
# malignmark), and without any link or event attribute.
MATHML_TAGS = {
    "math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot",
    "msub", "msup", "msubsup", "munder", "mover", "munderover", "mmultiscripts",
    "mprescripts", "none", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose",
    "semantics",
}
MATHML_ATTRIBUTES = {"display", "mathvariant", "displaystyle", "scriptlevel", "fence",
                     "separator", "stretchy", "symmetric", "largeop", "movablelimits", "lspace",
                     "rspace", "minsize", "maxsize", "accent", "accentunder", "linethickness",
                     "columnalign", "rowalign", "columnspan", "rowspan", "notation", "form"}
ALLOWED_TAGS |= MATHML_TAGS
ALLOWED_ATTRIBUTES = {
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    **{tag: set(MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
}
for _tag in DIRECTIONAL:
    ALLOWED_ATTRIBUTES.setdefault(_tag, set()).add("dir")
MEDIA_SRC = re.compile(r"^media/([A-Za-z0-9][A-Za-z0-9._-]{0,200})$")
MEDIA_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if MEDIA_SRC.match(value) else None
    if attribute == "dir":
        return value if value.strip().lower() in ("ltr", "rtl", "auto") else None
    if attribute in ("width", "height", "colspan", "rowspan"):
        return value if value.isdigit() and len(value) <= 4 else None
    return value


def clean_html(html: str) -> str:
    """The sanitized fragment (idempotent: cleaning clean HTML changes nothing)."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=set(),
        strip_comments=True,
        link_rel=None,
    ).strip()


class _ImageSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def image_sources(html: str) -> list[str]:
    """Every <img src> of a fragment, before cleaning (to report bad ones precisely)."""
    if "<img" not in html.lower():
        return []  # most fragments: skip the (slow) HTML parser
    parser = _ImageSources()
    parser.feed(html)
    return parser.sources


_CLEAN_MEDIA = re.compile(r'<img[^>]*?\ssrc="media/([^"]+)"')


def media_names(clean: str) -> set[str]:
    """The bank images a *sanitized* fragment shows (nh3 writes src="..." predictably)."""
    return set(_CLEAN_MEDIA.findall(clean)) if "<img" in clean else set()


def visible_text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()
