"""Readers for the CACT bank file (YAML/JSON) and the simple CSV format.

They turn a file into a ParsedBank and report structural problems (wrong types, unknown or
missing fields) with their line or row; the rules shared by every format (keys, weights,
constructs, media, sanitizing) are checked afterwards by app.bank.validate.
"""

from __future__ import annotations

import difflib
from decimal import Decimal, InvalidOperation
from typing import Any

from app.bank import yamlio
from app.bank.parsed import (
    ParsedBank,
    ParsedItem,
    ParsedOption,
    ParsedPassage,
    Phrase,
    Problem,
    problem,
)
from app.spreadsheets import TableError, read_rows

FORMAT_ID = "cact-itembank/1"
BANK_FIELDS = {"code", "title", "kind"}
TOP_FIELDS = {"format", "bank", "constructs", "scoring", "passages", "items"}
ITEM_FIELDS = {"code", "kind", "construct", "level", "stem", "irt", "tags", "reverse",
               "scoring", "options", "meta", "passage"}
PASSAGE_FIELDS = {"code", "title", "text"}
OPTION_FIELDS = {"id", "text", "key", "weight", "points", "level"}
LETTERS = "abcdefghij"


class _Reader:
    """Collects problems for one file while walking its parsed YAML."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, line: int, item: str, /, *, key: str, **params: Any) -> None:
        self.problems.append(problem(self.source, f"line {line}" if line else "", item,
                                     key=key, **params))

    def check_fields(self, mapping: dict, allowed: set[str], line: int, item: str, what: Phrase
                     ) -> None:
        for name, dup_line in getattr(mapping, "duplicates", []):
            self.problem(dup_line, item, key="field_twice", name=name, what=what)
        for name in mapping:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), sorted(allowed), n=1)
                if close:
                    self.problem(line, item, key="unknown_field_did_you_mean", name=name,
                                 what=what, suggestion=close[0])
                else:
                    self.problem(line, item, key="unknown_field_allowed", name=name, what=what,
                                 allowed=", ".join(sorted(allowed)))

    def number(self, value: Any, line: int, item: str, field: str) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.problem(line, item, key="field_not_number", field=field, value=value)
            return None
        try:
            number = Decimal(str(value).strip().replace(",", "."))
        except InvalidOperation:
            self.problem(line, item, key="field_not_number", field=field, value=value)
            return None
        if not number.is_finite():
            self.problem(line, item, key="field_not_finite", field=field)
            return None
        return number

    def integer(self, value: Any, line: int, item: str, field: str) -> int | None:
        number = self.number(value, line, item, field)
        if number is None:
            return None
        if number != number.to_integral_value():
            self.problem(line, item, key="field_not_whole", field=field, value=value)
            return None
        return int(number)

    def text(self, value: Any, line: int, item: str, field: str, required: bool = True) -> str:
        if value is None:
            if required:
                self.problem(line, item, key="field_missing", field=field)
            return ""
        if isinstance(value, bool | dict | list):
            self.problem(line, item, key="field_not_text", field=field)
            return ""
        return str(value)


def parse_bank_file(text: str, *, source: str) -> tuple[ParsedBank | None, list[Problem]]:
    """Read a CACT bank file (YAML or JSON)."""
    reader = _Reader(source)
    try:
        doc = yamlio.load(text)
    except yamlio.YamlError as exc:
        if exc.key:  # aliases, nesting: a message of its own that says how to fix it
            reader.problem(exc.line, "", key=exc.key, **exc.params)
        else:
            reader.problem(exc.line, "", key="bank_file_not_yaml", error=str(exc))
        return None, reader.problems
    if not isinstance(doc, dict):
        reader.problem(1, "", key="bank_file_not_mapping")
        return None, reader.problems
    doc_line = yamlio.line_of(doc)
    reader.check_fields(doc, TOP_FIELDS, doc_line, "", Phrase(key="in_bank_file"))
    if doc.get("format") != FORMAT_ID:
        reader.problem(doc_line, "", key="bank_file_format", expected=FORMAT_ID,
                       found=doc.get("format"))
    bank = doc.get("bank")
    if not isinstance(bank, dict):
        reader.problem(doc_line, "", key="bank_section_missing")
        bank = yamlio.LineDict()
    reader.check_fields(bank, BANK_FIELDS, yamlio.line_of(bank, doc_line), "",
                        Phrase(key="in_bank"))
    bank_line = yamlio.line_of(bank, doc_line)
    constructs = doc.get("constructs") or {}
    if not isinstance(constructs, dict):
        reader.problem(doc_line, "", key="constructs_not_mapping")
        constructs = {}
    scoring = doc.get("scoring") or {}
    if not isinstance(scoring, dict):
        reader.problem(doc_line, "", key="scoring_not_mapping")
        scoring = {}
    items_node = doc.get("items")
    if not isinstance(items_node, list) or not items_node:
        reader.problem(doc_line, "", key="items_not_list")
        items_node = []
    items = [_parse_item(reader, node, index) for index, node in enumerate(items_node, 1)]
    passages = _parse_passages(reader, doc.get("passages"), doc_line)
    parsed = ParsedBank(
        code=reader.text(bank.get("code"), bank_line, "", "bank.code"),
        title=reader.text(bank.get("title"), bank_line, "", "bank.title"),
        kind=reader.text(bank.get("kind"), bank_line, "", "bank.kind"),
        items=[item for item in items if item is not None],
        scoring_rules=_plain(scoring),
        extra_constructs={str(k): str(v) for k, v in constructs.items()},
        source_filename=source,
        passages=passages,
    )
    return parsed, reader.problems


def _parse_passages(reader: _Reader, node: Any, doc_line: int) -> dict[str, ParsedPassage]:
    """``passages:``, a list of {code, title, text}: texts several items are asked about."""
    if node is None:
        return {}
    if not isinstance(node, list):
        reader.problem(doc_line, "", key="passages_not_list")
        return {}
    passages: dict[str, ParsedPassage] = {}
    for index, entry in enumerate(node, 1):
        if not isinstance(entry, dict):
            reader.problem(yamlio.line_of(node, doc_line), "", key="passage_not_mapping",
                           index=index)
            continue
        line = yamlio.line_of(entry, doc_line)
        reader.check_fields(entry, PASSAGE_FIELDS, line, "", Phrase(key="in_passage"))
        code = reader.text(entry.get("code"), line, "", "passage code")
        if code in passages:
            reader.problem(line, "", key="passage_code_twice", code=code,
                           first=passages[code].location)
            continue
        passages[code] = ParsedPassage(
            code=code, title=reader.text(entry.get("title"), line, "", "title", required=False),
            content=reader.text(entry.get("text"), line, "", "passage text"),
            location=f"line {line}", source=reader.source)
    return passages


def _plain(value: Any) -> Any:
    """LineDict/LineList to plain JSON-able values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse_item(reader: _Reader, node: Any, index: int) -> ParsedItem | None:
    if not isinstance(node, dict):
        reader.problem(0, f"#{index}", key="item_not_mapping", index=index)
        return None
    line = yamlio.line_of(node)
    code = reader.text(node.get("code"), line, f"#{index}", "code") or f"#{index}"
    reader.check_fields(node, ITEM_FIELDS, line, code, Phrase(key="in_item"))
    options_node = node.get("options")
    options: list[ParsedOption] = []
    if not isinstance(options_node, list):
        reader.problem(line, code, key="options_not_list")
        options_node = []
    for pos, opt in enumerate(options_node, 1):
        if not isinstance(opt, dict):
            reader.problem(yamlio.line_of(options_node, line), code,
                           key="option_not_mapping", position=pos)
            continue
        oline = yamlio.line_of(opt)
        reader.check_fields(opt, OPTION_FIELDS, oline, code, Phrase(key="in_option"))
        key = opt.get("key", False)
        if not isinstance(key, bool):
            reader.problem(oline, code, key="field_not_boolean", field="key", value=key)
            key = False
        weight_value = opt.get("points") if "points" in opt else opt.get("weight")
        options.append(ParsedOption(
            ident=reader.text(opt.get("id"), oline, code, "option id"),
            content=reader.text(opt.get("text"), oline, code, "option text"),
            is_key=key,
            weight=reader.number(weight_value, oline, code, "weight"),
            level=reader.integer(opt.get("level"), oline, code, "level"),
            location=f"line {oline}",
        ))
    irt_node = node.get("irt")
    irt = None
    if irt_node is not None:
        if isinstance(irt_node, dict):
            reader.check_fields(irt_node, {"a", "b", "c"}, line, code, Phrase(key="in_irt"))
            irt = {k: float(v) for k in ("a", "b", "c")
                   if (v := reader.number(irt_node.get(k), line, code, f"irt.{k}")) is not None}
        else:
            reader.problem(line, code, key="irt_not_mapping")
    scoring: dict[str, Any] = {}
    item_scoring = node.get("scoring")
    if item_scoring is not None:
        if isinstance(item_scoring, dict):
            reader.check_fields(item_scoring, {"min", "max", "exact", "min_choices",
                                               "max_choices"}, line, code,
                                Phrase(key="in_item_scoring"))
            for bound in ("min", "max"):
                value = reader.number(item_scoring.get(bound), line, code, f"scoring.{bound}")
                if value is not None:
                    scoring[bound] = float(value)
            for bound in ("min_choices", "max_choices"):  # options a taker may tick (QTI's)
                count = reader.integer(item_scoring.get(bound), line, code, f"scoring.{bound}")
                if count is not None and count > 0:
                    scoring[bound] = count
            exact = item_scoring.get("exact", False)
            if not isinstance(exact, bool):
                reader.problem(line, code, key="field_not_boolean", field="scoring.exact",
                               value=exact)
            elif exact:
                scoring["exact"] = True
        else:
            reader.problem(line, code, key="item_scoring_not_mapping")
    reverse = node.get("reverse", False)
    if not isinstance(reverse, bool):
        reader.problem(line, code, key="field_not_boolean", field="reverse", value=reverse)
    elif reverse:
        scoring["reverse"] = True
    tags = node.get("tags") or []
    if not isinstance(tags, list):
        reader.problem(line, code, key="tags_not_list")
        tags = []
    return ParsedItem(
        code=code,
        kind=reader.text(node.get("kind"), line, code, "kind"),
        construct=reader.text(node.get("construct"), line, code, "construct"),
        stem=reader.text(node.get("stem"), line, code, "stem"),
        options=options,
        level=reader.integer(node.get("level"), line, code, "level"),
        irt=irt,
        scoring=scoring,
        tags=[str(t) for t in tags],
        meta=_plain(node.get("meta") or {}),
        location=f"line {line}",
        source=reader.source,
        passage=reader.text(node.get("passage"), line, code, "passage", required=False) or None,
    )


# -- CSV ----------------------------------------------------------------------------------------

CSV_REQUIRED = ("code", "kind", "construct", "stem")


def parse_csv(data: bytes, *, source: str, code: str, title: str, kind: str
              ) -> tuple[ParsedBank | None, list[Problem]]:
    """Read the simple one-row-per-item CSV (single and weighted items), also saved as .xlsx
    (app/spreadsheets.py reads both)."""
    problems: list[Problem] = []

    def add(row: int, column: str, item: str, *, key: str, **params: Any) -> None:
        location = f"row {row}" + (f", column {column}" if column else "")
        problems.append(problem(source, location, item, key=key, **params))

    try:
        table = read_rows(data)
    except TableError as failed:
        problems.append(problem(source, failed.location, "", key=failed.key, **failed.params))
        return None, problems
    records = iter(table.rows)
    header = [h.strip().lower() for h in next(records, [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        add(1, "", "", key="csv_missing_columns", columns=", ".join(missing))
        return None, problems
    reader = ({name: values[i] if i < len(values) else ""
               for i, name in enumerate(header)} for values in records)
    items: list[ParsedItem] = []
    for row_number, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        if not any(row.values()):
            continue
        item_code = row.get("code") or f"row {row_number}"
        kind_value = row.get("kind", "").lower()
        if kind_value not in ("single", "weighted"):
            add(row_number, "kind", item_code, key="csv_kind", found=kind_value)
        options: list[ParsedOption] = []
        key_letter = row.get("key", "").strip().lower()
        for letter in LETTERS:
            content = row.get(f"option_{letter}", "")
            if not content:
                continue
            weight = None
            raw_weight = row.get(f"weight_{letter}", "")
            if raw_weight:
                try:
                    weight = Decimal(raw_weight.replace(",", "."))
                except InvalidOperation:
                    add(row_number, f"weight_{letter}", item_code, key="csv_weight_not_number",
                        value=raw_weight)
            options.append(ParsedOption(ident=letter.upper(), content=content,
                                        is_key=(letter == key_letter), weight=weight))
        if key_letter and key_letter not in {o.ident.lower() for o in options}:
            add(row_number, "key", item_code, key="csv_key_no_option",
                letter=key_letter.upper())
        level = None
        if row.get("level"):
            try:
                level = int(row["level"])
            except ValueError:
                add(row_number, "level", item_code, key="csv_level", value=row["level"])
        stem = row.get("stem", "")
        if stem and "<" not in stem:
            stem = f"<p>{_escape(stem)}</p>"
        if row.get("image"):
            stem += f'<p><img src="media/{_escape(row["image"])}" alt=""></p>'
        items.append(ParsedItem(
            code=item_code, kind=kind_value, construct=row.get("construct", ""), stem=stem,
            options=options, level=level,
            tags=[t.strip() for t in row.get("tags", "").split(";") if t.strip()],
            location=f"row {row_number}", source=source,
        ))
    if not items and not problems:
        add(2, "", "", key="csv_no_rows")
    return ParsedBank(code=code, title=title, kind=kind, items=items,
                      source_filename=source), problems


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;")
