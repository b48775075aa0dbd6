"""Scoring in the product: from an attempt's form and answers to stored construct scores and a
result (levels, gaps against the job standard, JPM, category, potensi band, nine-box).

The computation is pure (``app.scoring.outcomes`` over the engine, ``app.scoring.engine`` and
``app.scoring.irt``); this module gathers its inputs from the database (:class:`ScoringCache`)
and writes the outcome. Scoring is deterministic and idempotent: the same answers, keys,
standards and settings give the same rows, and a row whose values did not change is not
touched at all (not even its ``computed_at``), so scoring twice, or a rescore that reproduces
the numbers, leaves the tables exactly as they were.

Who calls it: ``timing.submit`` and the sweeper (an attempt handed in or out of time), a
session's close (every attempt again), a key correction (the attempts that saw the item), the
admin's rescore button and ``cact results rescore``. The first three must never fail the
action that triggered them: they use :func:`score_attempt_safely` /
:func:`score_session_safely`, which run scoring in a savepoint and only log a failure (the
result is then missing and is recomputed at close or by a rescore).

Settings per session live in ``TestSession.settings["scoring"]`` (see
``outcomes.ScoringConfig``), because agencies and even events differ (purpose of the
assessment, whether JPM is capped).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app import audit
from app.bank.models import BankKind, BankVersion, Item, ItemBank, ItemKind, ItemOption
from app.delivery.models import (
    DONE_STATES,
    Answer,
    AnswerEvent,
    Attempt,
    AttemptItem,
    AttemptSection,
    AttemptState,
)
from app.scoring import validity
from app.scoring.engine import ScoredItem, ScoredOption
from app.scoring.models import (
    ConstructScore,
    JobStandard,
    PerformanceRating,
    Result,
    ValidityDecision,
)
from app.scoring.outcomes import (
    ConstructOutcome,
    ItemData,
    Rating,
    ResultValues,
    ScoringConfig,
    ScoringData,
    VersionData,
    construct_outcomes,
    plain,
    result_values,
)
from app.scoring.standards import default_standards
from app.sessions.models import Participant, RosterEntry, TestSession, job_at_the_time

logger = logging.getLogger("cact.scoring")
# Item kinds answered by choosing one option of a list (the straight-lining indicator).
SINGLE_CHOICE = {ItemKind.single.value, ItemKind.weighted.value}


class ScoringCache(ScoringData):
    """:class:`ScoringData` loaded from the database on demand, once for many attempts. Only
    valid inside one transaction: a key correction flushes before rescoring, and the cache is
    made after it."""

    def __init__(self, db: Session) -> None:
        super().__init__()
        self.db = db

    def load_items(self, item_ids: Iterable[int]) -> None:
        """Put these items, their options and bank versions in ``items`` and ``versions``."""
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
                self.items[item.id] = ItemData(item.id, item.code, item.construct,
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
            self.versions[version.id] = VersionData(version.id, BankKind(kind).value,
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
            self._table_keys = {(k, c) for k, c in self.db.execute(
                select(JobStandard.job_key, JobStandard.competency))}
        return self._table_keys


def _chunks(values: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _config(session: TestSession) -> ScoringConfig:
    return ScoringConfig.from_settings(session.settings)


def _rating_for(db: Session, participant_id: int, config: ScoringConfig) -> Rating | None:
    query = select(PerformanceRating).where(PerformanceRating.participant_id == participant_id)
    if config.performance_period:
        query = query.where(PerformanceRating.period == config.performance_period)
    row = db.scalar(query.order_by(PerformanceRating.period.desc()).limit(1))
    return Rating(row.period, row.rating) if row is not None else None


# -- writing ------------------------------------------------------------------------------------


# What a rescore reports as changed, in this order: the values a result is read by (the
# construct levels, the total, the potensi score and band, the JPM, the combined JPM, the
# category, the nine-box box). A row rewritten only to carry a new key revision or a new
# detail did not change the result.
RESULT_FIELDS = ("levels", "total", "potensi_score", "potensi_band", "jpm", "combined_jpm",
                 "category", "nine_box")


def _upsert_constructs(db: Session, attempt_id: int, outcomes: list[ConstructOutcome],
                       now: datetime) -> set[str]:
    """Write the construct scores that differ; returns ``{"levels"}`` when a level stored
    before differs now (or a construct came or went), else an empty set."""
    existing = {row.construct: row for row in db.scalars(
        select(ConstructScore).where(ConstructScore.attempt_id == attempt_id))}
    levels_moved = bool(existing) and set(existing) != {o.construct for o in outcomes}
    for o in outcomes:
        values = {"raw": o.raw, "max_raw": o.max_raw, "percent": o.percent, "level": o.level,
                  "theta": o.theta, "theta_se": o.theta_se, "bank_version_id": o.bank_version_id,
                  "key_revision": o.key_revision}
        row = existing.pop(o.construct, None)
        if row is None:
            db.add(ConstructScore(attempt_id=attempt_id, construct=o.construct,
                                  computed_at=now, **values))
        elif not all(getattr(row, k) == v for k, v in values.items()):
            levels_moved = levels_moved or row.level != o.level
            for k, v in values.items():
                setattr(row, k, v)
            row.computed_at = now
    for stale in existing.values():  # a construct no longer in the form (cannot normally happen)
        db.delete(stale)
    return {"levels"} if levels_moved else set()


def _read_values(total: Decimal | None, jpm: Decimal | None, category: str, band: str,
                 box: int | None, detail: dict[str, Any] | None) -> dict[str, Any]:
    """A result's values as :data:`RESULT_FIELDS` names them (levels aside), comparable
    whichever backend returned them (Numeric scale, JSON text)."""
    detail = detail or {}
    return {"total": total, "potensi_score": detail.get("potensi_score"), "potensi_band": band,
            "jpm": jpm, "combined_jpm": detail.get("combined_jpm"), "category": category,
            "nine_box": box}


def _upsert_result(db: Session, attempt_id: int, values: ResultValues, now: datetime
                   ) -> tuple[Result, set[str] | None]:
    """Write the result if it differs; returns it and the names of the fields whose value
    changed (None for a result that did not exist before)."""
    row = db.scalar(select(Result).where(Result.attempt_id == attempt_id))
    data = {"total_score": values.total_score, "jpm": values.jpm, "category": values.category,
            "potensi_band": values.potensi_band, "nine_box": values.nine_box,
            "key_revision": values.key_revision, "detail": values.detail}
    if row is None:
        row = Result(attempt_id=attempt_id, computed_at=now, **data)
        db.add(row)
        return row, None
    if all(getattr(row, k) == v for k, v in data.items()):
        return row, set()
    old = _read_values(row.total_score, row.jpm, row.category, row.potensi_band, row.nine_box,
                       row.detail)
    new = _read_values(values.total_score, values.jpm, values.category, values.potensi_band,
                       values.nine_box, values.detail)
    for k, v in data.items():
        setattr(row, k, v)
    row.computed_at = now
    return row, {name for name in old if old[name] != new[name]}


# -- public operations --------------------------------------------------------------------------


@dataclass
class AttemptScore:
    result: Result
    new: bool  # the attempt had no result before
    fields: tuple[str, ...]  # what changed in a result that existed (RESULT_FIELDS order)
    old_total: Decimal | None
    old_jpm: Decimal | None


def _participant_of(db: Session, attempt: Attempt) -> tuple[Participant, str, str]:
    """The person, and the job group and grade they had on this session's roster: the job
    standard a result is read against is the one of the job at the time of the test, also
    when a later roster (another session) changed the person's current job."""
    person, entry = db.execute(
        select(Participant, RosterEntry).join(RosterEntry,
                                              RosterEntry.participant_id == Participant.id)
        .where(RosterEntry.id == attempt.roster_entry_id)).one()
    job = job_at_the_time(entry, person)
    return person, job.job_group, job.grade


def _validity(db: Session, attempt: Attempt, rows: Sequence[Row[int, int, list[int]]],
              answers: Mapping[int, Any], cache: ScoringCache,
              rules: validity.ValidityRules) -> dict[str, Any]:
    """The attempt's validity indicators (``app.scoring.validity``) from its form, answers,
    answer event log and section clocks."""
    form = []
    for row in rows:
        response = answers.get(row.item_id)
        answered = response not in (None, [])
        place = None
        if (answered and not isinstance(response, list)
                and cache.items[row.item_id].scored.kind in SINGLE_CHOICE
                and response in row.option_order):
            place = row.option_order.index(response) + 1
        form.append(validity.FormItem(row.item_id, row.section, answered, place))
    saves = [validity.Save(item_id, at) for item_id, at in db.execute(
        select(AnswerEvent.item_id, AnswerEvent.server_time)
        .where(AnswerEvent.attempt_id == attempt.id)
        .order_by(AnswerEvent.server_time, AnswerEvent.seq))]
    starts = {number: started for number, started in db.execute(
        select(AttemptSection.section, AttemptSection.started_at)
        .where(AttemptSection.attempt_id == attempt.id)) if started is not None}
    times = validity.response_times(saves, {row.item_id: row.section for row in rows}, starts)
    used = None
    if attempt.started_at is not None and attempt.submitted_at is not None:
        used = max(0, int((attempt.submitted_at - attempt.started_at).total_seconds())
                   - attempt.paused_total_s)
    note = (_latest_audit(db, "attempt.force_submit", attempt)[0]
            if attempt.submit_reason == "forced" else "")
    found = validity.indicators(form, times, rules, time_used_s=used,
                                submit_reason=attempt.submit_reason, forced_note=note)
    decision = db.get(ValidityDecision, attempt.id)
    if decision is not None:  # an admin's decision (app/scoring/decisions.py)
        taken = {"by": decision.decided_by, "reason": decision.reason,
                 "at": decision.decided_at.isoformat()}
        if decision.decision == "retake":  # still withheld: the retake's result counts
            found["retake"] = {**taken, "session": str(
                _latest_audit(db, "result.retake", attempt)[1].get("to", ""))}
        else:
            found["accepted"] = taken
    return found


def _latest_audit(db: Session, action: str, attempt: Attempt) -> tuple[str, dict[str, Any]]:
    """Reason and data of the newest audit event ``action`` on this attempt ("", {} if none):
    the text a proctor gave for a force submit, the session a retake was scheduled in. A force
    submit scores the attempt before its audit row is written, so its first result has no
    text yet; the next scoring (the session's close, a rescore) finds it."""
    row = db.execute(select(audit.AuditEvent.reason, audit.AuditEvent.data).where(
        audit.AuditEvent.action == action, audit.AuditEvent.target == f"attempt:{attempt.id}")
        .order_by(audit.AuditEvent.id.desc()).limit(1)).first()
    return (row.reason or "", dict(row.data or {})) if row else ("", {})


def _score(db: Session, attempt: Attempt, now: datetime, cache: ScoringCache,
           config: ScoringConfig) -> AttemptScore:
    if attempt.state not in DONE_STATES:
        raise ValueError(f"attempt {attempt.id} is {attempt.state.value}; only handed-in "
                         "attempts are scored")
    rows = db.execute(select(AttemptItem.item_id, AttemptItem.section, AttemptItem.option_order)
                      .where(AttemptItem.attempt_id == attempt.id)
                      .order_by(AttemptItem.position)).all()
    form = [row.item_id for row in rows]
    answers: dict[int, Any] = dict(db.execute(select(Answer.item_id, Answer.response).where(
        Answer.attempt_id == attempt.id)).all())
    participant, job_group, grade = _participant_of(db, attempt)
    cache.load_items(form)
    outcomes = construct_outcomes(cache, form, answers)
    values = result_values(cache, config, job_group=job_group, grade=grade, outcomes=outcomes,
                           rating=_rating_for(db, participant.id, config))
    rules = validity.ValidityRules.from_settings(
        db.get_one(TestSession, attempt.session_id).settings)  # in the identity map already
    values = validity.withhold(values, _validity(db, attempt, rows, answers, cache, rules))
    before = db.execute(select(Result.total_score, Result.jpm).where(
        Result.attempt_id == attempt.id)).first()
    moved = _upsert_constructs(db, attempt.id, outcomes, now)
    result, fields = _upsert_result(db, attempt.id, values, now)
    db.flush()
    moved = moved | fields if fields is not None else set()
    return AttemptScore(result, fields is None, tuple(f for f in RESULT_FIELDS if f in moved),
                        before.total_score if before else None, before.jpm if before else None)


def score_attempt(db: Session, *, attempt: Attempt, now: datetime,
                  cache: ScoringCache | None = None) -> Result:
    """Score one handed-in attempt (submitted or expired) and upsert its construct scores and
    result, stamped with the bank version and key revision used. Idempotent: when nothing
    changed, no row is written. Raises ValueError for an attempt that is still running."""
    session = db.get_one(TestSession, attempt.session_id)
    return _score(db, attempt, now, cache or ScoringCache(db), _config(session)).result


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
                    configs[attempt.session_id] = _config(
                        db.get_one(TestSession, attempt.session_id))
                _score(db, attempt, now, cache, configs[attempt.session_id])
                done += 1
        except Exception:  # one bad attempt must not stop the others
            logger.exception("scoring attempt %s failed; it stays pending", attempt.id)
    return done


@dataclass
class SessionScoring:
    """What scoring some attempts did, for the CLI, the page and the audit log: of the
    ``scored`` results, ``new`` did not exist, ``changed`` existed and differ now in at least
    one of :data:`RESULT_FIELDS` (``fields``: how many results changed in each), ``unchanged``
    read the same (a row rewritten only for its key revision is unchanged)."""

    scored: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    fields: dict[str, int] = field(default_factory=dict)
    without_attempt: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)  # one per changed result

    def add(self, scored: AttemptScore, attempt_id: int) -> None:
        self.scored += 1
        label = scored.result.category or "-"
        self.categories[label] = self.categories.get(label, 0) + 1
        if scored.new:
            self.new += 1
        elif not scored.fields:
            self.unchanged += 1
        else:
            self.changed += 1
            for name in scored.fields:
                self.fields[name] = self.fields.get(name, 0) + 1
            self.changes.append({
                "attempt": attempt_id, "fields": list(scored.fields),
                "old_total": plain(scored.old_total),
                "new_total": plain(scored.result.total_score),
                "old_jpm": plain(scored.old_jpm), "new_jpm": plain(scored.result.jpm)})

    def as_json(self) -> dict[str, Any]:
        return {"rescored": self.scored, "changed": self.changed, "unchanged": self.unchanged,
                "new": self.new,
                "fields": {name: self.fields[name] for name in RESULT_FIELDS
                           if name in self.fields},
                "without_attempt": self.without_attempt,
                "categories": dict(sorted(self.categories.items())),
                "changes": self.changes}


def _rescore(db: Session, attempts: Iterable[Attempt], now: datetime, summary: SessionScoring
             ) -> SessionScoring:
    cache = ScoringCache(db)
    configs: dict[int, ScoringConfig] = {}
    for attempt in attempts:
        if attempt.session_id not in configs:
            configs[attempt.session_id] = _config(
                db.get_one(TestSession, attempt.session_id))
        summary.add(_score(db, attempt, now, cache, configs[attempt.session_id]), attempt.id)
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
        select(RosterEntry.id).outerjoin(Attempt, (Attempt.roster_entry_id == RosterEntry.id)
                   & (Attempt.state != AttemptState.prepared))
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
    audit who, why, how many results changed and in what, and each changed result's old and
    new total and JPM."""
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
