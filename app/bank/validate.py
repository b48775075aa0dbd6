"""Rules every imported bank must satisfy, whatever its format. Each broken rule becomes a
located Problem saying what to fix; the caller stores nothing unless the list is empty.

Also sanitizes item HTML in place (so what is checked is exactly what will be stored).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from decimal import Decimal
from typing import Any

from defusedxml import ElementTree as SafeET

from app.bank import levels
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.parsed import (
    BANK_KINDS,
    ITEM_KINDS,
    ParsedBank,
    ParsedItem,
    ParsedPassage,
    Phrase,
    Problem,
    problem,
)
from app.bank.sanitize import MEDIA_SRC, MEDIA_TYPES, clean_html, image_sources, visible_text

BANK_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,63}$")
ITEM_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CONSTRUCT_RE = re.compile(r"^(potensi|kompetensi)\.[a-z0-9_]+$")
MAX_OPTIONS = 10
MAX_MEDIA_BYTES = 5 * 1024 * 1024


class _Checker:
    def __init__(self, bank: ParsedBank) -> None:
        self.bank = bank
        self.problems: list[Problem] = []
        self.constructs = set(KNOWN_CONSTRUCTS) | set(bank.extra_constructs)
        # A bank holds one kind: its constructs are "<kind>.<name>". Unknown kinds are
        # reported on their own; then no construct is refused for its kind.
        self.kind_prefix = bank.kind + "." if bank.kind in BANK_KINDS else ""

    def other_kind(self, construct: str) -> str:
        """The other bank kind ``construct`` belongs to, or "" when it fits this bank."""
        if not self.kind_prefix or construct.startswith(self.kind_prefix):
            return ""
        return next((kind for kind in BANK_KINDS if construct.startswith(kind + ".")), "")

    def add(self, item: ParsedItem | None, *, key: str, location: str = "", **params: Any
            ) -> None:
        if item is None:
            self.problems.append(problem(self.bank.source_filename, location, "", key=key,
                                         **params))
        else:
            self.problems.append(problem(item.source or self.bank.source_filename,
                                         location or item.location, item.code, key=key,
                                         **params))


def validate_bank(bank: ParsedBank) -> list[Problem]:
    """All problems of ``bank`` (empty when it may be stored). Sanitizes HTML in place."""
    check = _Checker(bank)
    _check_bank(check)
    if not bank.items:  # e.g. every item of a QTI package left out as unsupported
        check.add(None, key="bank_no_items", skipped=len(bank.skipped))
    seen: dict[str, ParsedItem] = {}
    used_media: set[str] = set()
    for item in bank.items:
        if item.code in seen:
            first = seen[item.code]
            check.add(item, key="item_code_twice", code=item.code, first=first.location)
        else:
            seen[item.code] = item
        _check_item(check, item, used_media)
    _check_passages(check, used_media)
    for name in sorted(used_media - set(bank.media)):
        check.add(None, key="media_missing", name=name)
    for name, data in sorted(bank.media.items()):
        _check_media(check, name, data)
    return check.problems


def _check_passages(check: _Checker, used_media: set[str]) -> None:
    """Each passage has a code, a title within bounds and text; each item's passage exists.
    Passage HTML is sanitized like a stem."""
    bank = check.bank
    for code, passage in bank.passages.items():

        def add(key: str, passage: ParsedPassage = passage, **params: Any) -> None:
            check.problems.append(problem(passage.source or bank.source_filename,
                                          passage.location, "", key=key,
                                          passage=passage.code, **params))

        if not ITEM_CODE_RE.match(code):
            add("passage_code", code=code)
        if len(passage.title) > 200:
            add("passage_title_long")
        for src in image_sources(passage.content):
            match = MEDIA_SRC.match(src)
            if match:
                used_media.add(match.group(1))
            else:
                add("passage_image_source", src=src)
        passage.content = clean_html(passage.content)
        if not visible_text(passage.content) and "<img" not in passage.content:
            add("passage_empty")
    for item in bank.items:
        if item.passage and item.passage not in bank.passages:
            known = ", ".join(sorted(bank.passages)) or "-"
            check.add(item, key="item_passage_unknown", passage=item.passage, known=known)


def _check_bank(check: _Checker) -> None:
    bank = check.bank
    if not BANK_CODE_RE.match(bank.code or ""):
        check.add(None, key="bank_code", code=bank.code)
    if not bank.title.strip():
        check.add(None, key="bank_title")
    if bank.kind not in BANK_KINDS:
        check.add(None, key="bank_kind", kind=bank.kind)
    for code in bank.extra_constructs:
        if not CONSTRUCT_RE.match(code):
            check.add(None, key="construct_declared", code=code)
        elif other := check.other_kind(code):
            check.add(None, key="construct_declared_kind", code=code, other=other,
                      kind=bank.kind)
    rules = bank.scoring_rules or {}
    points = (rules.get("points") or {}).get("single") or {}
    for field in ("correct", "wrong"):
        if field in points and not isinstance(points[field], int | float):
            check.add(None, key="points_not_number", field=field)
    for construct, spec in (rules.get("levels") or {}).items():
        _check_levels(check, construct, spec)


def _check_levels(check: _Checker, construct: str, spec: Any) -> None:
    where = f"scoring.levels.{construct}"
    if other := check.other_kind(construct):
        check.add(None, key="levels_construct_kind", where=where, construct=construct,
                  other=other, kind=check.bank.kind)
    elif construct not in check.constructs:
        check.add(None, key="levels_unknown_construct", where=where,
                  hint=_construct_hint(check, construct))
    if not isinstance(spec, dict) or len(set(spec) & {"cut_scores", "norm_table"}) != 1:
        check.add(None, key="levels_spec", where=where)
        return
    scale = spec.get("scale", levels.RAW)
    if scale not in levels.SCALES:
        check.add(None, key="levels_scale", where=where, scale=scale)
        return
    percent = scale == levels.PERCENT
    if "cut_scores" in spec:
        cuts = spec["cut_scores"]
        if (not isinstance(cuts, list) or len(cuts) != 4
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in cuts)
                or any(a >= b for a, b in zip(cuts, cuts[1:], strict=False))):
            check.add(None, key="cut_scores", where=where)
        elif percent and not (cuts[0] > 0 and cuts[-1] <= 100):
            check.add(None, key="cut_scores_percent", where=where)
        return
    rows = spec["norm_table"]
    field = "min_percent" if percent else "min_raw"
    ok = isinstance(rows, list) and rows and all(
        isinstance(r, dict) and isinstance(r.get(field), int | float)
        and not isinstance(r.get(field), bool)
        and r.get("level") in (1, 2, 3, 4, 5) for r in rows)
    if not ok or any(a[field] >= b[field] or a["level"] > b["level"]
                     for a, b in zip(rows, rows[1:], strict=False)):
        if percent:
            check.add(None, key="norm_table_percent", where=where)
        else:
            check.add(None, key="norm_table", where=where)
    elif percent and not (rows[0][field] >= 0 and rows[-1][field] <= 100):
        check.add(None, key="norm_table_percent", where=where)


def _construct_hint(check: _Checker, construct: str) -> Phrase:
    fitting = sorted(c for c in check.constructs if not check.other_kind(c))
    close = difflib.get_close_matches(construct, fitting, n=1)
    if close:
        return Phrase(key="construct_did_you_mean", params={"suggestion": close[0]})
    return Phrase(key="construct_declare_hint")


def _check_item(check: _Checker, item: ParsedItem, used_media: set[str]) -> None:
    if not ITEM_CODE_RE.match(item.code):
        check.add(item, key="item_code_chars", code=item.code)
    if item.kind not in ITEM_KINDS:
        check.add(item, key="item_kind", kinds=", ".join(ITEM_KINDS), kind=item.kind)
    if other := check.other_kind(item.construct):
        check.add(item, key="item_construct_kind", code=item.code, construct=item.construct,
                  other=other, kind=check.bank.kind)
    elif item.construct not in check.constructs:
        check.add(item, key="item_construct", construct=item.construct,
                  hint=_construct_hint(check, item.construct))
    if item.level is not None and not 1 <= item.level <= 5:
        check.add(item, key="item_level", level=item.level)
    if item.irt:
        if item.irt.get("a", 1.0) <= 0:
            check.add(item, key="irt_a")
        if not 0 <= item.irt.get("c", 0.0) < 1:
            check.add(item, key="irt_c")
        if "b" not in item.irt:
            check.add(item, key="irt_b")
    item.stem = _clean_fragment(check, item, item.stem, Phrase(key="part_stem"), used_media)
    if not visible_text(item.stem) and "<img" not in item.stem:
        check.add(item, key="stem_empty")
    if not 2 <= len(item.options) <= MAX_OPTIONS:
        check.add(item, key="options_count", most=MAX_OPTIONS, count=len(item.options))
    ids = Counter(o.ident for o in item.options)
    for ident, count in ids.items():
        if not ident:
            check.add(item, key="option_no_id")
        elif count > 1:
            check.add(item, key="option_id_twice", ident=ident, count=count)
    for option in item.options:
        part = Phrase(key="part_option", params={"ident": option.ident})
        option.content = _clean_fragment(check, item, option.content, part, used_media,
                                         option.location)
        if not visible_text(option.content) and "<img" not in option.content:
            check.add(item, key="option_empty", location=option.location, ident=option.ident)
        if option.level is not None and not 1 <= option.level <= 5:
            check.add(item, key="option_level", location=option.location,
                      ident=option.ident)
    _check_kind_rules(check, item)


def _check_kind_rules(check: _Checker, item: ParsedItem) -> None:
    keys = [o for o in item.options if o.is_key]
    weights = [o.weight for o in item.options]
    if item.kind == "single":
        if len(keys) != 1:
            if keys:
                check.add(item, key="single_keys", count=len(keys))
            else:
                check.add(item, key="single_key_missing")
        if any(w is not None for w in weights):
            check.add(item, key="single_weight")
    elif item.kind == "weighted":
        missing = [o.ident for o in item.options if o.weight is None]
        if missing:
            check.add(item, key="weighted_missing", options=", ".join(missing))
        if any(w is not None and w < 0 for w in weights):
            check.add(item, key="weights_negative")
        if keys:
            check.add(item, key="weighted_key")
    elif item.kind == "multiple":
        missing = [o.ident for o in item.options if o.weight is None]
        if missing:
            check.add(item, key="multiple_missing", options=", ".join(missing))
        low, high = item.scoring.get("min"), item.scoring.get("max")
        if low is not None and high is not None and low > high:
            check.add(item, key="multiple_min_max")
        if all(w is not None and w <= 0 for w in weights):
            check.add(item, key="multiple_no_points")
        if item.scoring.get("exact") and not keys:
            check.add(item, key="multiple_exact_no_key")
    elif item.kind == "likert":
        given = [w for w in weights if w is not None]
        if given and len(given) != len(weights):
            check.add(item, key="likert_weights")
        if keys:
            check.add(item, key="likert_key")
        if not given:
            for position, option in enumerate(item.options, 1):
                option.weight = Decimal(position)


def _clean_fragment(check: _Checker, item: ParsedItem, html: str, what: Phrase,
                    used_media: set[str], location: str = "") -> str:
    for src in image_sources(html):
        match = MEDIA_SRC.match(src)
        if match:
            used_media.add(match.group(1))
        else:
            check.add(item, key="image_source", location=location, what=what, src=src)
    return clean_html(html)


def _check_media(check: _Checker, name: str, data: bytes) -> None:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    where = f"media/{name}"
    if suffix not in MEDIA_TYPES:
        check.add(None, key="media_type", where=where, types=", ".join(sorted(MEDIA_TYPES)))
        return
    if len(data) > MAX_MEDIA_BYTES:
        check.add(None, key="media_size", where=where)
    if suffix == ".svg":
        reason = svg_problem(data)
        if reason:
            check.add(None, key="media_svg", where=where, reason=reason)


def svg_problem(data: bytes) -> Phrase | None:
    """Why an SVG is unsafe to show (scripts, handlers, external references), or None."""
    try:
        root = SafeET.fromstring(data)
    except Exception as exc:  # noqa: BLE001 - defusedxml raises several kinds
        return Phrase(key="svg_unreadable", params={"error": str(exc)})
    for element in root.iter():
        tag = str(element.tag).rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "embed", "object"):
            return Phrase(key="svg_element", params={"tag": tag})
        for attribute, value in element.attrib.items():
            name = attribute.rsplit("}", 1)[-1].lower()
            if name.startswith("on"):
                return Phrase(key="svg_handler", params={"name": name})
            if name == "href" and not value.startswith("#"):
                return Phrase(key="svg_link", params={"value": value})
    return None
