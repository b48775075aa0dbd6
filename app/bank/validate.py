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

from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.parsed import BANK_KINDS, ITEM_KINDS, ParsedBank, ParsedItem, Problem
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

    def add(self, item: ParsedItem | None, message: str, location: str = "") -> None:
        if item is None:
            self.problems.append(Problem(self.bank.source_filename, location, "", message))
        else:
            self.problems.append(Problem(item.source or self.bank.source_filename,
                                         location or item.location, item.code, message))


def validate_bank(bank: ParsedBank) -> list[Problem]:
    """All problems of ``bank`` (empty when it may be stored). Sanitizes HTML in place."""
    check = _Checker(bank)
    _check_bank(check)
    seen: dict[str, ParsedItem] = {}
    used_media: set[str] = set()
    for item in bank.items:
        if item.code in seen:
            first = seen[item.code]
            check.add(item, f"item code '{item.code}' is used twice (first at "
                      f"{first.location}); every item needs its own code")
        else:
            seen[item.code] = item
        _check_item(check, item, used_media)
    for name in sorted(used_media - set(bank.media)):
        check.add(None, f"image 'media/{name}' is referenced but not in the upload; add it to "
                  "the media/ folder of the zip")
    for name, data in sorted(bank.media.items()):
        _check_media(check, name, data)
    return check.problems


def _check_bank(check: _Checker) -> None:
    bank = check.bank
    if not BANK_CODE_RE.match(bank.code or ""):
        check.add(None, f"bank code {bank.code!r} must be 2-64 characters of A-Z, 0-9, '.', '-', "
                  "'_' starting with a letter or digit (e.g. POTENSI-2026)")
    if not bank.title.strip():
        check.add(None, "the bank needs a title")
    if bank.kind not in BANK_KINDS:
        check.add(None, f"bank kind must be 'potensi' or 'kompetensi', not {bank.kind!r}")
    for code in bank.extra_constructs:
        if not CONSTRUCT_RE.match(code):
            check.add(None, f"declared construct {code!r} must look like potensi.name or "
                      "kompetensi.name (lower case, digits, _)")
    rules = bank.scoring_rules or {}
    points = (rules.get("points") or {}).get("single") or {}
    for field in ("correct", "wrong"):
        if field in points and not isinstance(points[field], int | float):
            check.add(None, f"scoring.points.single.{field} must be a number")
    for construct, spec in (rules.get("levels") or {}).items():
        _check_levels(check, construct, spec)


def _check_levels(check: _Checker, construct: str, spec: Any) -> None:
    where = f"scoring.levels.{construct}"
    if construct not in check.constructs:
        check.add(None, f"{where}: unknown construct; {_construct_hint(check, construct)}")
    if not isinstance(spec, dict) or len(set(spec) & {"cut_scores", "norm_table"}) != 1:
        check.add(None, f"{where} needs either cut_scores or norm_table")
        return
    if "cut_scores" in spec:
        cuts = spec["cut_scores"]
        if (not isinstance(cuts, list) or len(cuts) != 4
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in cuts)
                or any(a >= b for a, b in zip(cuts, cuts[1:], strict=False))):
            check.add(None, f"{where}.cut_scores must be four increasing numbers: the lowest "
                      "raw score for levels 2, 3, 4 and 5")
        return
    rows = spec["norm_table"]
    ok = isinstance(rows, list) and rows and all(
        isinstance(r, dict) and isinstance(r.get("min_raw"), int | float)
        and r.get("level") in (1, 2, 3, 4, 5) for r in rows)
    if not ok or any(a["min_raw"] >= b["min_raw"] or a["level"] > b["level"]
                     for a, b in zip(rows, rows[1:], strict=False)):
        check.add(None, f"{where}.norm_table must list {{min_raw, level}} rows with min_raw "
                  "increasing and levels 1-5 not decreasing")


def _construct_hint(check: _Checker, construct: str) -> str:
    close = difflib.get_close_matches(construct, sorted(check.constructs), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "use a built-in construct (docs/itembank-format.md) or declare it under 'constructs:'"


def _check_item(check: _Checker, item: ParsedItem, used_media: set[str]) -> None:
    if not ITEM_CODE_RE.match(item.code):
        check.add(item, f"item code {item.code!r} may only use letters, digits, '.', '-', '_'")
    if item.kind not in ITEM_KINDS:
        check.add(item, f"kind must be one of {', '.join(ITEM_KINDS)}, not {item.kind!r}")
    if item.construct not in check.constructs:
        check.add(item, f"unknown construct {item.construct!r}; "
                  f"{_construct_hint(check, item.construct)}")
    if item.level is not None and not 1 <= item.level <= 5:
        check.add(item, f"level must be between 1 and 5, not {item.level}")
    if item.irt:
        if item.irt.get("a", 1.0) <= 0:
            check.add(item, "irt.a (discrimination) must be greater than 0")
        if not 0 <= item.irt.get("c", 0.0) < 1:
            check.add(item, "irt.c (guessing) must be at least 0 and below 1")
        if "b" not in item.irt:
            check.add(item, "irt needs at least b (difficulty)")
    item.stem = _clean_fragment(check, item, item.stem, "stem", used_media)
    if not visible_text(item.stem) and "<img" not in item.stem:
        check.add(item, "the stem is empty; write the question (text or an image)")
    if not 2 <= len(item.options) <= MAX_OPTIONS:
        check.add(item, f"an item needs 2 to {MAX_OPTIONS} options, this one has "
                  f"{len(item.options)}")
    ids = Counter(o.ident for o in item.options)
    for ident, count in ids.items():
        if not ident:
            check.add(item, "every option needs an id (A, B, C ...)")
        elif count > 1:
            check.add(item, f"option id {ident!r} is used {count} times; option ids must differ")
    for option in item.options:
        option.content = _clean_fragment(check, item, option.content, f"option {option.ident}",
                                         used_media, option.location)
        if not visible_text(option.content) and "<img" not in option.content:
            check.add(item, f"option {option.ident} is empty", option.location)
        if option.level is not None and not 1 <= option.level <= 5:
            check.add(item, f"option {option.ident}: level must be between 1 and 5",
                      option.location)
    _check_kind_rules(check, item)


def _check_kind_rules(check: _Checker, item: ParsedItem) -> None:
    keys = [o for o in item.options if o.is_key]
    weights = [o.weight for o in item.options]
    if item.kind == "single":
        if len(keys) != 1:
            check.add(item, f"a single-choice item needs exactly one key (key: true); it has "
                      f"{len(keys)}" + (" - the key is missing" if not keys else ""))
        if any(w is not None for w in weights):
            check.add(item, "single-choice options take no weight; use kind 'weighted' for "
                      "weighted options")
    elif item.kind == "weighted":
        missing = [o.ident for o in item.options if o.weight is None]
        if missing:
            check.add(item, f"a weighted item needs a weight on every option; missing on "
                      f"{', '.join(missing)}")
        if any(w is not None and w < 0 for w in weights):
            check.add(item, "weights cannot be negative")
        if keys:
            check.add(item, "weighted options take no key; the weights score them")
    elif item.kind == "multiple":
        missing = [o.ident for o in item.options if o.weight is None]
        if missing:
            check.add(item, f"a multiple-response item needs points on every option; missing "
                      f"on {', '.join(missing)}")
        low, high = item.scoring.get("min"), item.scoring.get("max")
        if low is not None and high is not None and low > high:
            check.add(item, "scoring.min must not exceed scoring.max")
        if all(w is not None and w <= 0 for w in weights):
            check.add(item, "at least one option must earn points")
    elif item.kind == "likert":
        given = [w for w in weights if w is not None]
        if given and len(given) != len(weights):
            check.add(item, "give a weight on every Likert option or on none (default 1..n)")
        if keys:
            check.add(item, "Likert options take no key")
        if not given:
            for position, option in enumerate(item.options, 1):
                option.weight = Decimal(position)


def _clean_fragment(check: _Checker, item: ParsedItem, html: str, what: str,
                    used_media: set[str], location: str = "") -> str:
    for src in image_sources(html):
        match = MEDIA_SRC.match(src)
        if match:
            used_media.add(match.group(1))
        else:
            check.add(item, f"{what}: image source {src!r} is not allowed; images must be "
                      "files of the bank, written as media/NAME (no web addresses)", location)
    return clean_html(html)


def _check_media(check: _Checker, name: str, data: bytes) -> None:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    where = f"media/{name}"
    if suffix not in MEDIA_TYPES:
        check.add(None, f"{where}: only {', '.join(sorted(MEDIA_TYPES))} images are accepted")
        return
    if len(data) > MAX_MEDIA_BYTES:
        check.add(None, f"{where} is larger than 5 MB; shrink the image")
    if suffix == ".svg":
        problem = svg_problem(data)
        if problem:
            check.add(None, f"{where}: {problem}")


def svg_problem(data: bytes) -> str | None:
    """Why an SVG is unsafe to show (scripts, handlers, external references), or None."""
    try:
        root = SafeET.fromstring(data)
    except Exception as exc:  # noqa: BLE001 - defusedxml raises several kinds
        return f"not a readable SVG ({exc})"
    for element in root.iter():
        tag = str(element.tag).rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "embed", "object"):
            return f"contains <{tag}>; remove it"
        for attribute, value in element.attrib.items():
            name = attribute.rsplit("}", 1)[-1].lower()
            if name.startswith("on"):
                return f"has an event handler ({name}); remove it"
            if name == "href" and not value.startswith("#"):
                return f"links to {value!r}; SVG images may only refer inside themselves"
    return None
