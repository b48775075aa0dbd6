"""Scoring in the product: from an attempt's form and answers to stored construct scores and a
result (levels, gaps against the job standard, JPM, category, potensi band, nine-box).

The arithmetic is the pure engine (``app.scoring.engine``); this module only gathers the
inputs from the database and writes the outcome. Scoring is deterministic and idempotent:
the same answers, keys, standards and settings give the same rows, and a row whose values did
not change is not touched at all (not even its ``computed_at``), so scoring twice, or a rescore
that reproduces the numbers, leaves the tables exactly as they were.

Who calls it: ``attempts.submit`` and the sweeper (an attempt handed in or out of time), a
session's close (every attempt again), a key correction (the attempts that saw the item), the
admin's rescore button and ``cact results rescore``. The first three must never fail the
action that triggered them: they use :func:`score_attempt_safely` /
:func:`score_session_safely`, which run scoring in a savepoint and only log a failure (the
result is then missing and is recomputed at close or by a rescore).

Settings per session live in ``TestSession.settings["scoring"]`` (see :class:`ScoringConfig`),
because agencies and even events differ (purpose of the assessment, whether JPM is capped).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.models import BankKind, BankVersion, Item, ItemBank, ItemKind, ItemOption
from app.delivery.models import Answer, Attempt, AttemptItem, AttemptState
from app.scoring import engine
from app.scoring.engine import ScoredItem, ScoredOption
from app.scoring.irt import eap
from app.scoring.models import ConstructScore, JobStandard, PerformanceRating, Result
from app.scoring.standards import default_standards
from app.sessions.models import JobGroup, Participant, RosterEntry, TestSession

logger = logging.getLogger("cact.scoring")

DONE_STATES = (AttemptState.submitted, AttemptState.expired)
KOMPETENSI_PREFIX = "kompetensi."

# (potensi, kompetensi) weights of the combined JPM per job group. docs/domain.md leaves the
# numbers to the agency; these defaults give kompetensi more weight the more managerial the job
# is.
DEFAULT_COMBINED_WEIGHTS: dict[str, tuple[int, int]] = {
    JobGroup.administrator.value: (40, 60),
    JobGroup.pengawas.value: (40, 60),
    JobGroup.fungsional.value: (50, 50),
    JobGroup.pelaksana.value: (50, 50),
}


@dataclass(frozen=True)
class ScoringConfig:
    """How results are read for one session. Every field can be set in the session's
    ``settings["scoring"]``; the defaults are those of docs/domain.md."""

    purpose: str = "mapping"  # "mapping" (Optimal ...) or "placement" (Memenuhi Syarat ...)
    jpm_cap: bool = True
    potensi_bands: tuple[Decimal, Decimal] = (Decimal(60), Decimal(80))
    combined_weights: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: dict(DEFAULT_COMBINED_WEIGHTS))
    category_basis: str = "kompetensi"  # or "combined": categorise the combined JPM
    performance_axis: str = "rating"  # or "jpm": kompetensi category as the performance axis
    performance_period: str = ""  # "" = the participant's latest period

    @classmethod
    def for_session(cls, session: TestSession) -> ScoringConfig:
        raw = dict((session.settings or {}).get("scoring") or {})
        config = cls()
        weights = dict(config.combined_weights)
        for group, pair in (raw.pop("combined_weights", None) or {}).items():
            weights[group] = (int(pair[0]), int(pair[1]))
        bands = raw.pop("potensi_bands", None)
        config = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__},
                     combined_weights=weights,
                     potensi_bands=((Decimal(str(bands[0])), Decimal(str(bands[1]))) if bands
                                    else config.potensi_bands))
        if config.purpose not in engine.CATEGORIES:
            raise ValueError(f"scoring purpose must be one of {sorted(engine.CATEGORIES)}")
        if config.category_basis not in ("kompetensi", "combined"):
            raise ValueError("category_basis must be kompetensi or combined")
        if config.performance_axis not in ("rating", "jpm"):
            raise ValueError("performance_axis must be rating or jpm")
        return config

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["potensi_bands"] = [str(b) for b in self.potensi_bands]
        data["combined_weights"] = {k: list(v) for k, v in sorted(self.combined_weights.items())}
        return data


def job_key(participant: Participant) -> str:
    """The job standard's key: the job group, or ``fungsional:<grade>``."""
    group = JobGroup(participant.job_group).value
    return f"fungsional:{participant.grade}" if group == JobGroup.fungsional.value else group


def competency_of(construct: str) -> str:
    """``kompetensi.integritas`` -> ``integritas`` (the job standards' name)."""
    return construct.removeprefix(KOMPETENSI_PREFIX)


def aspect_of(construct: str) -> str:
    known = KNOWN_CONSTRUCTS.get(construct)
    return known.aspect if known else construct.split(".", 1)[-1]


def _plain(value: Decimal | None) -> str | None:
    """A Decimal as JSON text without trailing zeros ("12.5", "40"), the same on every
    backend (PostgreSQL returns Numeric at the column's scale, SQLite does not)."""
    if value is None:
        return None
    return format(value.normalize(), "f")


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ItemData:
    id: int
    code: str
    construct: str
    bank_version_id: int
    scored: ScoredItem
    labels: dict[int, str]  # option id -> label, for exports
    irt: tuple[float, float, float] | None


@dataclass(frozen=True)
class _VersionData:
    id: int
    kind: str  # potensi / kompetensi (the bank's)
    key_revision: int
    rules: dict[str, Any]


class ScoringCache:
    """Items, options, bank versions and job standards loaded once for many attempts (a
    session's attempts share their items). Only valid inside one transaction: a key
    correction flushes before rescoring, and the cache is made after it."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.items: dict[int, _ItemData] = {}
        self.versions: dict[int, _VersionData] = {}
        self._standards: dict[tuple[str, str], int] | None = None
        self._table_keys: set[tuple[str, str]] | None = None
        self._max: dict[int, Decimal] = {}

    def item_max(self, data: _ItemData) -> Decimal:
        """The item's highest score, once per item (it is the same for every attempt)."""
        value = self._max.get(data.id)
        if value is None:
            value = self._max[data.id] = engine.item_max(
                data.scored, self.versions[data.bank_version_id].rules)
        return value

    def load_items(self, item_ids: Iterable[int]) -> None:
        missing = sorted(set(item_ids) - set(self.items))
        if not missing:
            return
        # Plain rows, not ORM objects: a form has ~100 items and ~500 options.
        options: dict[int, list[Any]] = {}
        for chunk in _chunks(missing, 500):
            for option in self.db.execute(
                    select(ItemOption.item_id, ItemOption.id, ItemOption.is_key,
                           ItemOption.weight, ItemOption.label)
                    .where(ItemOption.item_id.in_(chunk))
                    .order_by(ItemOption.item_id, ItemOption.position)):
                options.setdefault(option.item_id, []).append(option)
            for item in self.db.execute(
                    select(Item.id, Item.code, Item.construct, Item.bank_version_id, Item.kind,
                           Item.scoring, Item.irt_a, Item.irt_b, Item.irt_c)
                    .where(Item.id.in_(chunk))):
                opts = options.get(item.id, [])
                scored = ScoredItem(
                    ItemKind(item.kind).value,
                    tuple(ScoredOption(o.id, bool(o.is_key),
                                       Decimal(o.weight) if o.weight is not None else None)
                          for o in opts),
                    dict(item.scoring or {}))
                irt = ((float(item.irt_a if item.irt_a is not None else 1.0), float(item.irt_b),
                        float(item.irt_c or 0.0)) if item.irt_b is not None else None)
                self.items[item.id] = _ItemData(item.id, item.code, item.construct,
                                                item.bank_version_id, scored,
                                                {o.id: o.label for o in opts}, irt)
        self._load_versions({self.items[i].bank_version_id for i in missing})

    def _load_versions(self, version_ids: set[int]) -> None:
        wanted = sorted(version_ids - set(self.versions))
        if not wanted:
            return
        for version, kind in self.db.execute(
                select(BankVersion, ItemBank.kind)
                .join(ItemBank, ItemBank.id == BankVersion.bank_id)
                .where(BankVersion.id.in_(wanted))):
            self.versions[version.id] = _VersionData(version.id, BankKind(kind).value,
                                                     version.key_revision,
                                                     dict(version.scoring_rules or {}))

    def standards(self) -> dict[tuple[str, str], int]:
        """(job_key, competency) -> required level: the table, else the defaults."""
        if self._standards is None:
            table = dict(default_standards())
            for row in self.db.scalars(select(JobStandard)):
                table[(row.job_key, row.competency)] = row.required_level
            self._standards = table
        return self._standards

    def table_keys(self) -> set[tuple[str, str]]:
        """The (job_key, competency) pairs an admin has in the table (not defaults)."""
        if self._table_keys is None:
            self._table_keys = set(self.db.execute(
                select(JobStandard.job_key, JobStandard.competency)).all())
        return self._table_keys


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# -- the computation ----------------------------------------------------------------------------


@dataclass
class _ConstructOutcome:
    construct: str
    kind: str
    bank_version_id: int
    key_revision: int
    raw: Decimal = engine.ZERO
    max_raw: Decimal = engine.ZERO
    level: int | None = None
    theta: float | None = None
    theta_se: float | None = None
    items: list[tuple[_ItemData, Any]] = field(default_factory=list)

    @property
    def percent(self) -> Decimal:
        return engine.percent(self.raw, self.max_raw)


def item_scores(cache: ScoringCache, form: list[int], answers: Mapping[int, Any]
                ) -> list[tuple[int, Decimal]]:
    """(item id, score) for each item of a form, with the current keys."""
    cache.load_items(form)
    out = []
    for item_id in form:
        data = cache.items[item_id]
        rules = cache.versions[data.bank_version_id].rules
        out.append((item_id, engine.item_score(data.scored, answers.get(item_id), rules)))
    return out


def _construct_outcomes(cache: ScoringCache, form: list[int], answers: Mapping[int, Any]
                        ) -> list[_ConstructOutcome]:
    cache.load_items(form)
    by_construct: dict[str, _ConstructOutcome] = {}
    for item_id in form:
        data = cache.items[item_id]
        version = cache.versions[data.bank_version_id]
        outcome = by_construct.get(data.construct)
        if outcome is None:
            # A construct drawn from two bank versions is stamped with the first (lowest id);
            # both revisions are in the result's detail.
            outcome = by_construct[data.construct] = _ConstructOutcome(
                data.construct, version.kind, version.id, version.key_revision)
        elif version.id < outcome.bank_version_id:
            outcome.bank_version_id, outcome.key_revision = version.id, version.key_revision
        response = answers.get(item_id)
        outcome.raw += engine.item_score(data.scored, response, version.rules)
        outcome.max_raw += cache.item_max(data)
        outcome.items.append((data, response))
    for outcome in by_construct.values():
        rule = cache.versions[outcome.bank_version_id].rules.get("levels", {}).get(
            outcome.construct)
        outcome.level = engine.level_for(outcome.raw, rule)
        if (outcome.kind == BankKind.potensi.value
                and all(d.irt is not None and d.scored.kind == "single"
                        for d, _ in outcome.items)):
            # A blank counts as wrong, as it does for the raw score (national CAT convention).
            responses = [int(any(o.is_key and o.id == r for o in d.scored.options))
                         for d, r in outcome.items]
            theta, se = eap(responses, [d.irt for d, _ in outcome.items if d.irt is not None])
            outcome.theta, outcome.theta_se = float(theta), float(se)
    return [by_construct[c] for c in sorted(by_construct)]


@dataclass
class _ResultValues:
    total_score: Decimal
    jpm: Decimal | None
    category: str
    potensi_band: str
    nine_box: int | None
    key_revision: int
    detail: dict[str, Any]


def _result_values(cache: ScoringCache, config: ScoringConfig, participant: Participant,
                   outcomes: list[_ConstructOutcome], rating: PerformanceRating | None
                   ) -> _ResultValues:
    key = job_key(participant)
    standards = cache.standards()
    kompetensi = [o for o in outcomes if o.kind == BankKind.kompetensi.value]
    potensi = [o for o in outcomes if o.kind == BankKind.potensi.value]
    # Levels achieved, over the competencies this test measured and could level: a session
    # that measures 3 competencies is matched against those 3, not against all 9.
    achieved = {competency_of(o.construct): o.level for o in kompetensi if o.level is not None}
    required = {c: standards[(key, c)] for c in sorted(achieved) if (key, c) in standards}
    gap = engine.gaps(achieved, required)
    strengths, development = engine.strengths_and_development(gap)
    jpm_value = engine.jpm(achieved, required, cap=config.jpm_cap) if required else None

    aspects: dict[str, tuple[Decimal, Decimal]] = {}
    for o in potensi:
        raw, maximum = aspects.get(aspect_of(o.construct), (engine.ZERO, engine.ZERO))
        aspects[aspect_of(o.construct)] = (raw + o.raw, maximum + o.max_raw)
    potensi_score = engine.mean_percent([aspects[a] for a in sorted(aspects)])
    band = (engine.potensi_band(potensi_score, config.potensi_bands)
            if potensi_score is not None else "")

    group = JobGroup(participant.job_group).value
    weights = config.combined_weights.get(group, DEFAULT_COMBINED_WEIGHTS[group])
    combined = (engine.combined_jpm(potensi_score, jpm_value, weights)
                if potensi_score is not None and jpm_value is not None else None)
    basis = combined if config.category_basis == "combined" else jpm_value
    label = engine.category(basis, config.purpose) if basis is not None else ""

    performance = None
    if config.performance_axis == "jpm":
        performance = engine.performance_from_category(label, config.purpose) if label else None
    elif rating is not None:
        performance = rating.rating
    box = (engine.nine_box(performance, engine.POTENTIAL_OF_BAND[band])
           if performance and band else None)

    revisions = {str(v): cache.versions[v].key_revision
                 for v in sorted({d.bank_version_id for o in outcomes for d, _ in o.items})}
    table = cache.table_keys() if required else set()
    detail = {
        "job_key": key,
        "required": required,
        "achieved": achieved,
        "gaps": gap,
        "standard_source": {c: "table" if (key, c) in table else "default" for c in required},
        "no_standard": sorted(c for c in achieved if c not in required),
        "strengths": strengths,
        "development_areas": development,
        "potensi_score": _plain(potensi_score),
        "aspects": {a: _plain(engine.percent(*aspects[a])) for a in sorted(aspects)},
        "combined_jpm": _plain(combined),
        "combined_weights": {"potensi": weights[0], "kompetensi": weights[1]},
        "performance": ({"period": rating.period, "rating": rating.rating}
                        if rating is not None and config.performance_axis == "rating"
                        else ({"axis": "jpm", "rating": performance} if performance else None)),
        "items": sum(len(o.items) for o in outcomes),
        "answered": sum(1 for o in outcomes for _, r in o.items if r not in (None, [])),
        "key_revisions": revisions,
        "config": config.as_json(),
    }
    return _ResultValues(
        total_score=sum((o.raw for o in outcomes), engine.ZERO),
        jpm=jpm_value, category=label, potensi_band=band, nine_box=box,
        # Revisions only grow, so their sum changes whenever any version's key changed.
        key_revision=sum(revisions.values()),
        detail=detail)


def _rating_for(db: Session, participant_id: int, config: ScoringConfig
                ) -> PerformanceRating | None:
    query = select(PerformanceRating).where(PerformanceRating.participant_id == participant_id)
    if config.performance_period:
        query = query.where(PerformanceRating.period == config.performance_period)
    return db.scalar(query.order_by(PerformanceRating.period.desc()).limit(1))


# -- writing ------------------------------------------------------------------------------------


def _upsert_constructs(db: Session, attempt_id: int, outcomes: list[_ConstructOutcome],
                       now: datetime) -> bool:
    existing = {row.construct: row for row in db.scalars(
        select(ConstructScore).where(ConstructScore.attempt_id == attempt_id))}
    changed = False
    for o in outcomes:
        values = {"raw": o.raw, "max_raw": o.max_raw, "percent": o.percent, "level": o.level,
                  "theta": o.theta, "theta_se": o.theta_se, "bank_version_id": o.bank_version_id,
                  "key_revision": o.key_revision}
        row = existing.pop(o.construct, None)
        if row is None:
            db.add(ConstructScore(attempt_id=attempt_id, construct=o.construct,
                                  computed_at=now, **values))
            changed = True
        elif not all(getattr(row, k) == v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.computed_at = now
            changed = True
    for stale in existing.values():  # a construct no longer in the form (cannot normally happen)
        db.delete(stale)
        changed = True
    return changed


def _upsert_result(db: Session, attempt_id: int, values: _ResultValues, now: datetime
                   ) -> tuple[Result, bool]:
    row = db.scalar(select(Result).where(Result.attempt_id == attempt_id))
    data = {"total_score": values.total_score, "jpm": values.jpm, "category": values.category,
            "potensi_band": values.potensi_band, "nine_box": values.nine_box,
            "key_revision": values.key_revision, "detail": values.detail}
    if row is None:
        row = Result(attempt_id=attempt_id, computed_at=now, **data)
        db.add(row)
        return row, True
    if all(getattr(row, k) == v for k, v in data.items()):
        return row, False
    for k, v in data.items():
        setattr(row, k, v)
    row.computed_at = now
    return row, True


# -- public operations --------------------------------------------------------------------------


@dataclass
class AttemptScore:
    result: Result
    changed: bool
    old_total: Decimal | None
    old_jpm: Decimal | None


def _participant_of(db: Session, attempt: Attempt) -> Participant:
    return db.execute(select(Participant).join(RosterEntry,
                                               RosterEntry.participant_id == Participant.id)
                      .where(RosterEntry.id == attempt.roster_entry_id)).scalar_one()


def _score(db: Session, attempt: Attempt, now: datetime, cache: ScoringCache,
           config: ScoringConfig) -> AttemptScore:
    if attempt.state not in DONE_STATES:
        raise ValueError(f"attempt {attempt.id} is {attempt.state.value}; only handed-in "
                         "attempts are scored")
    form = list(db.scalars(select(AttemptItem.item_id).where(
        AttemptItem.attempt_id == attempt.id).order_by(AttemptItem.position)))
    answers: dict[int, Any] = dict(db.execute(select(Answer.item_id, Answer.response).where(
        Answer.attempt_id == attempt.id)).all())
    participant = _participant_of(db, attempt)
    outcomes = _construct_outcomes(cache, form, answers)
    values = _result_values(cache, config, participant, outcomes,
                            _rating_for(db, participant.id, config))
    before = db.execute(select(Result.total_score, Result.jpm).where(
        Result.attempt_id == attempt.id)).first()
    constructs_changed = _upsert_constructs(db, attempt.id, outcomes, now)
    result, result_changed = _upsert_result(db, attempt.id, values, now)
    db.flush()
    return AttemptScore(result, constructs_changed or result_changed,
                        before.total_score if before else None, before.jpm if before else None)


def score_attempt(db: Session, *, attempt: Attempt, now: datetime,
                  cache: ScoringCache | None = None) -> Result:
    """Score one handed-in attempt (submitted or expired) and upsert its construct scores and
    result, stamped with the bank version and key revision used. Idempotent: when nothing
    changed, no row is written. Raises ValueError for an attempt that is still running."""
    session = db.get_one(TestSession, attempt.session_id)
    return _score(db, attempt, now, cache or ScoringCache(db),
                  ScoringConfig.for_session(session)).result


def score_attempt_safely(db: Session, *, attempt: Attempt, now: datetime) -> Result | None:
    """:func:`score_attempt` for the submit and sweep paths: in a savepoint, and a failure is
    logged, never raised, so handing in an attempt can never fail because of scoring (the
    result stays missing and is recomputed when the session closes or on a rescore)."""
    try:
        with db.begin_nested():
            return score_attempt(db, attempt=attempt, now=now)
    except Exception:  # see the docstring: scoring must never fail a submit
        logger.exception("scoring attempt %s failed; it will be rescored at session close",
                         attempt.id)
        return None


PENDING_BATCH = 20


def pending_attempts(db: Session, *, limit: int = PENDING_BATCH, lock: bool = False
                     ) -> list[Attempt]:
    """Handed-in attempts that have no result yet: expired by the sweeper or in another
    request, or whose scoring failed before. With ``lock`` (PostgreSQL), rows another
    worker is scoring right now are skipped instead of scored twice."""
    query = (select(Attempt).where(Attempt.state.in_(DONE_STATES),
                                   ~select(Result.id).where(Result.attempt_id == Attempt.id)
                                   .exists())
             .order_by(Attempt.id).limit(limit))
    if lock:
        query = query.with_for_update(skip_locked=True, of=Attempt)
    return list(db.scalars(query))


def score_pending(db: Session, *, now: datetime, limit: int = PENDING_BATCH) -> int:
    """Score up to ``limit`` attempts without a result, each in its own savepoint (one that
    fails is logged and left for the next run). The sweeper calls this in short transactions,
    so a deadline that closes 2,000 attempts at once never holds the write lock for long."""
    cache = ScoringCache(db)
    configs: dict[int, ScoringConfig] = {}
    done = 0
    for attempt in pending_attempts(db, limit=limit, lock=True):
        try:
            with db.begin_nested():
                if attempt.session_id not in configs:
                    configs[attempt.session_id] = ScoringConfig.for_session(
                        db.get_one(TestSession, attempt.session_id))
                _score(db, attempt, now, cache, configs[attempt.session_id])
                done += 1
        except Exception:  # one bad attempt must not stop the others
            logger.exception("scoring attempt %s failed; it stays pending", attempt.id)
    return done


@dataclass
class SessionScoring:
    """What scoring a session did, for the CLI, the page and the audit log."""

    scored: int = 0
    changed: int = 0
    without_attempt: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)  # attempts whose numbers moved

    def as_json(self) -> dict[str, Any]:
        return {"scored": self.scored, "changed": self.changed,
                "without_attempt": self.without_attempt,
                "categories": dict(sorted(self.categories.items())),
                "changes": self.changes}


def _rescore(db: Session, attempts: Iterable[Attempt], now: datetime, summary: SessionScoring
             ) -> SessionScoring:
    cache = ScoringCache(db)
    configs: dict[int, ScoringConfig] = {}
    for attempt in attempts:
        if attempt.session_id not in configs:
            configs[attempt.session_id] = ScoringConfig.for_session(
                db.get_one(TestSession, attempt.session_id))
        scored = _score(db, attempt, now, cache, configs[attempt.session_id])
        summary.scored += 1
        label = scored.result.category or "-"
        summary.categories[label] = summary.categories.get(label, 0) + 1
        if scored.changed:
            summary.changed += 1
            if scored.old_total is not None and (scored.old_total != scored.result.total_score
                                                 or scored.old_jpm != scored.result.jpm):
                summary.changes.append({
                    "attempt": attempt.id,
                    "old_total": _plain(scored.old_total),
                    "new_total": _plain(scored.result.total_score),
                    "old_jpm": _plain(scored.old_jpm), "new_jpm": _plain(scored.result.jpm)})
    return summary


def _done_attempts(db: Session, session: TestSession) -> list[Attempt]:
    return list(db.scalars(select(Attempt).where(Attempt.session_id == session.id,
                                                 Attempt.state.in_(DONE_STATES))
                           .order_by(Attempt.id)))


def score_session(db: Session, *, session: TestSession, now: datetime) -> SessionScoring:
    """Score every handed-in attempt of the session (the same numbers each time unless keys,
    standards, ratings or settings changed). Returns counts, including roster entries that
    never started an attempt (they have no result)."""
    summary = SessionScoring()
    summary.without_attempt = len(db.scalars(
        select(RosterEntry.id).outerjoin(Attempt, Attempt.roster_entry_id == RosterEntry.id)
        .where(RosterEntry.session_id == session.id, Attempt.id.is_(None))).all())
    return _rescore(db, _done_attempts(db, session), now, summary)


def score_session_safely(db: Session, *, session: TestSession, now: datetime
                         ) -> SessionScoring | None:
    """:func:`score_session` for closing a session: a failure is logged, never raised."""
    try:
        with db.begin_nested():
            return score_session(db, session=session, now=now)
    except Exception:  # closing a session must not fail because of scoring
        logger.exception("scoring session %s failed; run `cact results rescore %s`",
                         session.code, session.code)
        return None


def rescore_session(db: Session, *, session: TestSession, actor: str, now: datetime,
                    reason: str = "") -> SessionScoring:
    """An admin's rescore (page or CLI): score the session and audit what changed."""
    summary = score_session(db, session=session, now=now)
    audit.record(db, actor=actor, action="results.rescore", target=f"session:{session.code}",
                 reason=reason, now=now, data=summary.as_json())
    return summary


def rescore_item(db: Session, *, item: Item, reason: str, actor: str, now: datetime
                 ) -> SessionScoring:
    """After a key correction: rescore every handed-in attempt whose form holds the item, and
    audit who, why, and each attempt's old and new total and JPM."""
    attempts = list(db.scalars(
        select(Attempt).join(AttemptItem, AttemptItem.attempt_id == Attempt.id)
        .where(AttemptItem.item_id == item.id, Attempt.state.in_(DONE_STATES))
        .order_by(Attempt.id)))
    summary = _rescore(db, attempts, now, SessionScoring())
    audit.record(db, actor=actor, action="results.rescore_key_correction",
                 target=f"item:{item.id}", reason=reason.strip(), now=now,
                 data={"item_code": item.code, "bank_version_id": item.bank_version_id,
                       **summary.as_json()})
    return summary


def rescore_participants(db: Session, *, participant_ids: Iterable[int], now: datetime
                         ) -> SessionScoring:
    """Rescore the handed-in attempts of these participants (a new kinerja rating moves their
    nine-box)."""
    ids = sorted(set(participant_ids))
    attempts: list[Attempt] = []
    for chunk in _chunks(ids, 500):
        attempts += db.scalars(
            select(Attempt).join(RosterEntry, RosterEntry.id == Attempt.roster_entry_id)
            .where(RosterEntry.participant_id.in_(chunk), Attempt.state.in_(DONE_STATES))
            .order_by(Attempt.id))
    return _rescore(db, sorted(attempts, key=lambda a: a.id), now, SessionScoring())
