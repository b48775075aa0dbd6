"""Plain data that every importer (own YAML/JSON, CSV, QTI) produces and the validator and
store consume. Nothing here touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.i18n import translate

ITEM_KINDS = ("single", "weighted", "multiple", "likert")
BANK_KINDS = ("potensi", "kompetensi")


@dataclass
class Phrase:
    """A translatable part of a problem message: ``problem.<key>`` in the locale files, with
    its params (which may be Phrases themselves, e.g. a reason inside a sentence)."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str) -> str:
        return render(lang, self.key, self.params)


def render(lang: str, key: str, params: dict[str, Any]) -> str:
    """``problem.<key>`` in ``lang`` with ``params`` filled in (nested Phrases first)."""

    values = {name: v.text(lang) if isinstance(v, Phrase) else v for name, v in params.items()}
    # Every problem message is a format template ("{{" for a literal brace), params or not.
    return translate(lang, "problem." + key).format(**values)


@dataclass
class Problem:
    """One located error: which file, where in it, which item, and what to do."""

    file: str
    location: str  # "line 12", "row 5, column weight", "/assessmentItem/itemBody/..."
    item: str  # item code, or "" for bank-level problems
    message: str  # what is wrong and how to fix it (English)
    key: str = ""  # the message as "problem.<key>" in the locale files, when translatable
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"{self.file}, {self.location}" if self.location else self.file
        item = f" [{self.item}]" if self.item else ""
        return f"{where}{item}: {self.message}"

    def text(self, lang: str) -> str:
        """The message in ``lang`` ("id", "en"); the English ``message`` if not translatable."""
        return render(lang, self.key, self.params) if self.key else self.message


def problem(file: str, location: str, item: str, *, key: str, **params: Any) -> Problem:
    """A translatable Problem; its ``message`` is the English text of ``problem.<key>``."""
    return Problem(file, location, item, render("en", key, params), key, params)


@dataclass
class ParsedOption:
    ident: str  # the author's option identifier: A, B, ChoiceA, 1 ...
    content: str  # HTML (sanitized by the validator)
    is_key: bool = False
    weight: Decimal | None = None  # weighted, likert; points for multiple
    level: int | None = None
    location: str = ""  # where the option is in its file, for error messages


@dataclass
class ParsedPassage:
    """A text (story, table, case) that several items are asked about: shown beside each of
    them, stored once per bank version."""

    code: str
    title: str
    content: str  # HTML (sanitized by the validator)
    location: str = ""
    source: str = ""


@dataclass
class ParsedItem:
    code: str
    kind: str
    construct: str
    stem: str
    options: list[ParsedOption]
    level: int | None = None
    irt: dict[str, float] | None = None  # {"a": .., "b": .., "c": ..}
    scoring: dict[str, Any] = field(default_factory=dict)  # multiple: min/max; likert: reverse
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    location: str = ""  # where the item starts in its file, for error messages
    source: str = ""  # file name inside an archive
    passage: str | None = None  # code of the ParsedPassage it is asked about


@dataclass
class ParsedBank:
    code: str
    title: str
    kind: str
    items: list[ParsedItem]
    scoring_rules: dict[str, Any] = field(default_factory=dict)
    extra_constructs: dict[str, str] = field(default_factory=dict)  # code -> name
    media: dict[str, bytes] = field(default_factory=dict)  # "name.svg" -> bytes
    source_filename: str = ""
    skipped: list[Problem] = field(default_factory=list)  # unsupported items the admin accepted
    passages: dict[str, ParsedPassage] = field(default_factory=dict)  # code -> passage


class ImportFailed(Exception):
    """The import changed nothing; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems
