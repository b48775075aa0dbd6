"""Blueprints: reading (YAML file or admin form), checking against the banks, storing.

A blueprint says which items a test form draws: timed sections, each with picks of
"N items of construct C (optionally at level L) from bank B (version V, default the newest)".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from itertools import product
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint, BlueprintBankVersion
from app.assembly.parsing import BlueprintSpec, Pick, Section, parse_blueprint
from app.bank import levels
from app.bank.models import BankVersion, Item, ItemBank, ItemOption
from app.bank.parsed import ImportFailed, Phrase, Problem, problem
from app.bank.sanitize import clean_html
from app.sessions.models import TestSession

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,63}$")
MAX_MINUTES = 24 * 60


def available_items(db: Session, version_id: int) -> Counter[tuple[str, int | None]]:
    """How many items a version has per (construct, level)."""
    rows = db.execute(select(Item.construct, Item.level, func.count())
                      .where(Item.bank_version_id == version_id)
                      .group_by(Item.construct, Item.level))
    return Counter({(construct, level): n for construct, level, n in rows})


def check_blueprint(db: Session, spec: BlueprintSpec, *, source: str) -> list[Problem]:
    """Resolve banks and versions (filling in each pick's version id and availability) and
    report every problem, including picks that ask for more items than the bank has."""
    problems: list[Problem] = []

    def add(location: str, *, key: str, **params: Any) -> None:
        problems.append(problem(source, location, "", key=key, **params))

    if not CODE_RE.match(spec.code):
        add("", key="blueprint_code", code=spec.code)
    if not spec.name.strip():
        add("", key="blueprint_name")
    for minutes, what in [(spec.time_limit_minutes, Phrase(key="whole_test"))] + [
            (s.time_limit_minutes, Phrase(key="section_named", params={"title": s.title}))
            for s in spec.sections]:
        if minutes is not None and not 1 <= minutes <= MAX_MINUTES:
            add("", key="time_limit", what=what, most=MAX_MINUTES)
    if not spec.sections:
        add("", key="no_sections")
    demand: Counter[tuple[int, str, int | None]] = Counter()
    counts_cache: dict[int, Counter[tuple[str, int | None]]] = {}
    for number, section in enumerate(spec.sections, 1):
        if not section.title.strip():
            add(section.location, key="section_title", number=number)
        if not section.picks:
            add(section.location, key="section_no_picks", title=section.title)
        for pick in section.picks:
            where = pick.location or f"section '{section.title}'"
            if not pick.bank or not pick.construct:
                add(where, key="pick_incomplete", title=section.title)
                continue
            if pick.count < 1:
                add(where, key="pick_count", construct=pick.construct or "?")
                continue
            if pick.level is not None and not 1 <= pick.level <= 5:
                add(where, key="pick_level", construct=pick.construct)
            bank = db.scalar(select(ItemBank).where(ItemBank.code == pick.bank))
            if bank is None:
                add(where, key="pick_no_bank", bank=pick.bank)
                continue
            query = select(BankVersion).where(BankVersion.bank_id == bank.id)
            query = (query.where(BankVersion.version == pick.version) if pick.version
                     else query.order_by(BankVersion.version.desc()).limit(1))
            version = db.scalar(query)
            if version is None:
                add(where, key="pick_no_version", bank=pick.bank, version=pick.version)
                continue
            pick.version, pick.bank_version_id = version.version, version.id
            counts = counts_cache.setdefault(version.id, available_items(db, version.id))
            pick.available = sum(n for (construct, level), n in counts.items()
                                 if construct == pick.construct
                                 and (pick.level is None or level == pick.level))
            demand[(version.id, pick.construct, pick.level)] += pick.count
            if pick.available == 0:
                params = {"bank": pick.bank, "version": version.version,
                          "construct": pick.construct}
                if pick.level:
                    add(where, key="pick_no_items_at_level", level=pick.level, **params)
                else:
                    add(where, key="pick_no_items", **params)
    per_construct: Counter[tuple[int, str]] = Counter()
    for (version_id, construct, level), wanted in demand.items():
        per_construct[(version_id, construct)] += wanted
        have = counts_cache[version_id][(construct, level)]
        if level is not None and wanted > have:
            add("", key="picks_exceed_level", wanted=wanted, construct=construct, level=level,
                have=have)
    for (version_id, construct), wanted in per_construct.items():
        pool = sum(n for (c, _), n in counts_cache[version_id].items() if c == construct)
        if wanted > pool:
            add("", key="picks_exceed", wanted=wanted, construct=construct, have=pool)
    problems.extend(check_levels(db, spec, source=source))
    return problems


# -- can every level be reached? --------------------------------------------------------------

MAX_DRAWS = 200  # distinct draws checked per construct; beyond, the two extreme draws


def _item_scores(db: Session, version: BankVersion, construct: str, level: int | None
                 ) -> list[levels.ItemScores]:
    """What each item of a pick's pool can score."""
    query = select(Item.id, Item.kind, Item.scoring).where(
        Item.bank_version_id == version.id, Item.construct == construct)
    if level is not None:
        query = query.where(Item.level == level)
    rows = db.execute(query.order_by(Item.id)).all()
    options: dict[int, list[tuple[bool, Decimal | None]]] = {}
    for item_id, is_key, weight in db.execute(
            select(ItemOption.item_id, ItemOption.is_key, ItemOption.weight)
            .where(ItemOption.item_id.in_([r.id for r in rows]))
            .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(item_id, []).append((bool(is_key), weight))
    points = ((version.scoring_rules or {}).get("points") or {}).get("single") or {}
    single = (Decimal(str(points.get("correct", 5))), Decimal(str(points.get("wrong", 0))))
    return [levels.possible_scores(getattr(r.kind, "value", r.kind), options.get(r.id, []),
                                   r.scoring, single) for r in rows]


def _draws(pool: Counter[levels.ItemScores], count: int
           ) -> Iterator[list[levels.ItemScores]]:
    """Every distinct draw of ``count`` items from a pool (items that can score the same
    values are interchangeable)."""
    kinds = sorted(pool, key=lambda k: sorted(k.values))

    def rest(index: int, left: int) -> Iterator[list[levels.ItemScores]]:
        if left == 0:
            yield []
            return
        if index == len(kinds):
            return
        for take in range(min(left, pool[kinds[index]]), -1, -1):
            for tail in rest(index + 1, left - take):
                yield [kinds[index]] * take + tail
    return rest(0, count)


def _extreme_draws(pools: list[tuple[list[levels.ItemScores], int]]
                   ) -> list[list[levels.ItemScores]]:
    low: list[levels.ItemScores] = []
    high: list[levels.ItemScores] = []
    for items, count in pools:
        ordered = sorted(items, key=lambda i: i.maximum)
        low += ordered[:count]
        high += ordered[len(ordered) - count:]
    return [low, high]


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def check_levels(db: Session, spec: BlueprintSpec, *, source: str) -> list[Problem]:
    """Every level of a construct's level rule must be reachable on every form the blueprint
    can draw: a raw cut score above what the drawn items can give, or a level whose band holds
    no score the items can give, is a problem located at the construct's first pick.

    The rule is that of the construct's bank version with the lowest id, as in scoring
    (app/scoring/outcomes.py). Items that can score the same values are interchangeable, so
    the distinct draws are few; past MAX_DRAWS the draws with the smallest and the largest
    maximum are checked."""
    picks: dict[str, list[tuple[int, int, Pick]]] = {}
    for s_number, section in enumerate(spec.sections, 1):
        for p_number, pick in enumerate(section.picks, 1):
            if pick.bank_version_id and pick.construct and pick.count >= 1:
                picks.setdefault(pick.construct, []).append((s_number, p_number, pick))
    problems: list[Problem] = []
    for construct, located in picks.items():
        versions: dict[int, BankVersion] = {}
        for _, _, pick in located:
            found = db.get(BankVersion, pick.bank_version_id)
            if found is not None:
                versions[found.id] = found
        if not versions:
            continue
        rule = (versions[min(versions)].scoring_rules or {}).get("levels", {}).get(construct)
        if not rule:
            continue
        pools = []
        for _, _, pick in located:
            version = versions[pick.bank_version_id or 0]
            items = _item_scores(db, version, construct, pick.level)
            if len(items) < pick.count:
                break  # reported as picks_exceed
            pools.append((items, pick.count))
        else:
            per_pick = [list(_take(_draws(Counter(items), count), MAX_DRAWS + 1))
                        for items, count in pools]
            total = 1
            for draws in per_pick:
                total *= len(draws)
            forms = ([sum(parts, []) for parts in product(*per_pick)] if total <= MAX_DRAWS
                     else _extreme_draws(pools))
            missing: dict[int, levels.Unreachable] = {}
            for form in forms:
                for gap in levels.unreachable_levels(rule, form):
                    missing.setdefault(gap.level, gap)
            s_number, p_number, first = located[0]
            count = sum(p.count for _, _, p in located)
            where = first.location or f"section {s_number}"
            percent = levels.scale_of(rule) == levels.PERCENT
            for level in sorted(missing):
                gap = missing[level]
                params: dict[str, Any] = {"section": s_number, "pick": p_number,
                                          "construct": construct, "count": count,
                                          "level": level, "maximum": _number(gap.maximum)}
                if gap.high is None or (not percent and gap.low > gap.maximum):
                    problems.append(problem(source, where, "", key="level_above_maximum",
                                            need=_number(gap.low), **params))
                else:
                    problems.append(problem(
                        source, where, "", key="level_no_score", low=_number(gap.low),
                        high=_number(gap.high), unit="%" if percent else "", **params))
    return problems


def _take(draws: Iterator[list[levels.ItemScores]], limit: int
          ) -> Iterator[list[levels.ItemScores]]:
    for index, draw in enumerate(draws):
        if index >= limit:
            return
        yield draw


def spec_to_json(spec: BlueprintSpec) -> dict[str, Any]:
    return {"sections": [
        {"title": s.title, "instructions": clean_html(s.instructions),
         "time_limit_s": s.time_limit_minutes * 60 if s.time_limit_minutes else None,
         "shuffle_items": s.shuffle_items, "shuffle_options": s.shuffle_options,
         "allow_back": s.allow_back,
         # Stored only when off: blueprints saved before passages existed keep their spec.
         **({} if s.keep_passages else {"keep_passages": False}),
         "picks": [{"bank": p.bank, "version": p.version, "bank_version_id": p.bank_version_id,
                    "construct": p.construct, "level": p.level, "count": p.count}
                   for p in s.picks]}
        for s in spec.sections]}


def spec_from_model(blueprint: Blueprint) -> BlueprintSpec:
    """The stored blueprint as an editable spec (for the editor and YAML export)."""
    return BlueprintSpec(
        code=blueprint.code, name=blueprint.name, description=blueprint.description,
        time_limit_minutes=blueprint.time_limit_s // 60 if blueprint.time_limit_s else None,
        sections=[Section(
            title=s["title"], instructions=s.get("instructions", ""),
            time_limit_minutes=s["time_limit_s"] // 60 if s.get("time_limit_s") else None,
            shuffle_items=s.get("shuffle_items", True),
            shuffle_options=s.get("shuffle_options", True), allow_back=s.get("allow_back", True),
            keep_passages=s.get("keep_passages", True),
            picks=[Pick(bank=p["bank"], construct=p["construct"], count=p["count"],
                        version=p.get("version"), level=p.get("level"),
                        bank_version_id=p.get("bank_version_id")) for p in s["picks"]])
            for s in blueprint.spec.get("sections", [])])


def save_blueprint(db: Session, spec: BlueprintSpec, *, source: str, actor: str,
                   now: datetime) -> Blueprint:
    """Check and store (create or replace) a blueprint. Raises ImportFailed with every problem.
    A blueprint that a session uses cannot be replaced: give the new one another code."""
    problems = check_blueprint(db, spec, source=source)
    existing = db.scalar(select(Blueprint).where(Blueprint.code == spec.code))
    if existing is not None:
        used = db.scalar(select(TestSession.code).where(TestSession.blueprint_id == existing.id)
                         .limit(1))
        if used:
            problems.append(problem(source, "", "", key="blueprint_in_use", code=spec.code,
                                    session=used))
    if problems:
        raise ImportFailed(problems)
    blueprint = existing or Blueprint(code=spec.code, created_at=now, spec={})
    blueprint.name = spec.name.strip()
    blueprint.description = spec.description.strip()
    blueprint.time_limit_s = spec.time_limit_minutes * 60 if spec.time_limit_minutes else None
    blueprint.spec = spec_to_json(spec)
    if existing is None:
        db.add(blueprint)
    db.flush()
    version_ids = sorted({p.bank_version_id for s in spec.sections for p in s.picks
                          if p.bank_version_id})
    for link in db.scalars(select(BlueprintBankVersion)
                           .where(BlueprintBankVersion.blueprint_id == blueprint.id)):
        db.delete(link)
    db.flush()
    db.add_all([BlueprintBankVersion(blueprint_id=blueprint.id, bank_version_id=v)
                for v in version_ids])
    audit.record(db, actor=actor, action="blueprint.replace" if existing else "blueprint.create",
                 target=f"blueprint:{spec.code}", now=now,
                 data={"items": spec.item_count, "sections": len(spec.sections),
                       "bank_versions": version_ids})
    db.flush()
    return blueprint


def import_blueprint(db: Session, text: str, *, source: str, actor: str, now: datetime
                     ) -> Blueprint:
    spec, problems = parse_blueprint(text, source=source)
    if problems or spec is None:
        raise ImportFailed(problems)
    return save_blueprint(db, spec, source=source, actor=actor, now=now)


def blueprint_version_ids(db: Session, blueprint_id: int) -> list[int]:
    return list(db.scalars(select(BlueprintBankVersion.bank_version_id)
                           .where(BlueprintBankVersion.blueprint_id == blueprint_id)))


# -- what the blueprint pages show ------------------------------------------------------------


def all_blueprints(db: Session) -> list[Blueprint]:
    return list(db.scalars(select(Blueprint).order_by(Blueprint.code)))


def blueprint_by_code(db: Session, code: str) -> Blueprint | None:
    return db.scalar(select(Blueprint).where(Blueprint.code == code))


def blueprint_rows(db: Session) -> list[dict[str, Any]]:
    """Every blueprint by code, with its number of sections and items and a session that uses
    it (such a blueprint can no longer be replaced)."""
    used_by: dict[int, str] = dict(db.execute(  # .all(): a Result itself is not a mapping
        select(TestSession.blueprint_id, func.min(TestSession.code))
        .group_by(TestSession.blueprint_id)).all())
    rows = []
    for bp in db.scalars(select(Blueprint).order_by(Blueprint.code)):
        sections = bp.spec.get("sections", [])
        rows.append({"blueprint": bp, "sections": len(sections), "used_by": used_by.get(bp.id),
                     "item_count": sum(p["count"] for s in sections for p in s["picks"])})
    return rows


def editor_choices(db: Session, known_constructs: set[str]) -> dict[str, Any]:
    """What the form editor offers: the bank codes, each bank's versions (newest first) and the
    constructs (the known ones and those in any bank)."""
    banks = list(db.scalars(select(ItemBank.code).order_by(ItemBank.code)))
    in_banks = set(db.scalars(select(Item.construct).distinct()))
    versions: dict[str, list[int]] = {}
    for code, number in db.execute(select(ItemBank.code, BankVersion.version)
                                   .join(BankVersion, BankVersion.bank_id == ItemBank.id)
                                   .order_by(BankVersion.version.desc())):
        versions.setdefault(code, []).append(number)
    return {"bank_codes": banks, "bank_versions": versions,
            "construct_codes": sorted(known_constructs | in_banks)}
