"""Reading a cact-blueprint/1 YAML document into a BlueprintSpec (structure only; checking it
against the banks is app/assembly/service.py). Pure: no database, so the server can run it in a
child process with a time and memory budget (app/uploads.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.bank import yamlio
from app.bank.parsed import Problem, problem

FORMAT_ID = "cact-blueprint/1"


@dataclass
class Pick:
    bank: str
    construct: str
    count: int
    version: int | None = None
    level: int | None = None
    location: str = ""
    # Resolved against the database:
    bank_version_id: int | None = None
    available: int | None = None


@dataclass
class Section:
    title: str
    instructions: str = ""
    time_limit_minutes: int | None = None
    shuffle_items: bool = True
    shuffle_options: bool = True
    allow_back: bool = True
    # Items asked about the same passage follow each other, in bank order (default).
    keep_passages: bool = True
    picks: list[Pick] = field(default_factory=list)
    location: str = ""


@dataclass
class BlueprintSpec:
    code: str
    name: str
    description: str = ""
    time_limit_minutes: int | None = None
    sections: list[Section] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return sum(p.count for s in self.sections for p in s.picks)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number == int(number) else None


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "ya", "on")


def parse_blueprint(text: str, *, source: str) -> tuple[BlueprintSpec | None, list[Problem]]:
    """Read a cact-blueprint/1 YAML document (structure only; see check_blueprint)."""
    problems: list[Problem] = []

    def add(line: int, *, key: str, **params: Any) -> None:
        problems.append(problem(source, f"line {line}" if line else "", "", key=key, **params))

    try:
        doc = yamlio.load(text)
    except yamlio.YamlError as exc:
        if exc.key:  # aliases, nesting: a message of its own that says how to fix it
            add(exc.line, key=exc.key, **exc.params)
        else:
            add(exc.line, key="blueprint_not_yaml", error=str(exc))
        return None, problems
    if not isinstance(doc, dict):
        add(1, key="blueprint_not_mapping")
        return None, problems
    if doc.get("format") != FORMAT_ID:
        add(yamlio.line_of(doc), key="blueprint_format", expected=FORMAT_ID)
    spec = BlueprintSpec(code=str(doc.get("code") or ""), name=str(doc.get("name") or ""),
                         description=str(doc.get("description") or ""),
                         time_limit_minutes=_as_int(doc.get("time_limit_minutes")))
    sections = doc.get("sections")
    if not isinstance(sections, list):
        add(yamlio.line_of(doc), key="sections_not_list")
        sections = []
    for node in sections:
        if not isinstance(node, dict):
            add(yamlio.line_of(sections), key="section_not_mapping")
            continue
        section = Section(
            title=str(node.get("title") or ""),
            instructions=str(node.get("instructions") or ""),
            time_limit_minutes=_as_int(node.get("time_limit_minutes")),
            shuffle_items=_as_bool(node.get("shuffle_items"), True),
            shuffle_options=_as_bool(node.get("shuffle_options"), True),
            allow_back=_as_bool(node.get("allow_back"), True),
            keep_passages=_as_bool(node.get("keep_passages"), True),
            location=f"line {yamlio.line_of(node)}",
        )
        for pick in node.get("picks") or []:
            if not isinstance(pick, dict):
                add(yamlio.line_of(node), key="pick_not_mapping")
                continue
            count = _as_int(pick.get("count"))
            section.picks.append(Pick(
                bank=str(pick.get("bank") or ""), construct=str(pick.get("construct") or ""),
                count=count if count is not None else -1, version=_as_int(pick.get("version")),
                level=_as_int(pick.get("level")), location=f"line {yamlio.line_of(pick)}"))
        spec.sections.append(section)
    return spec, problems
