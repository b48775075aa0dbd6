"""Plain data that every importer (own YAML/JSON, CSV, QTI) produces and the validator and
store consume. Nothing here touches the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ITEM_KINDS = ("single", "weighted", "multiple", "likert")
BANK_KINDS = ("potensi", "kompetensi")


@dataclass
class Problem:
    """One located error: which file, where in it, which item, and what to do."""

    file: str
    location: str  # "line 12", "row 5, column weight", "/assessmentItem/itemBody/..."
    item: str  # item code, or "" for bank-level problems
    message: str  # what is wrong and how to fix it

    def __str__(self) -> str:
        where = f"{self.file}, {self.location}" if self.location else self.file
        item = f" [{self.item}]" if self.item else ""
        return f"{where}{item}: {self.message}"


@dataclass
class ParsedOption:
    ident: str  # the author's option identifier: A, B, ChoiceA, 1 ...
    content: str  # HTML (sanitized by the validator)
    is_key: bool = False
    weight: Decimal | None = None  # weighted, likert; points for multiple
    level: int | None = None
    location: str = ""  # where the option is in its file, for error messages


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


class ImportFailed(Exception):
    """The import changed nothing; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems
