"""Item analysis of one bank version: load what the takers answered, score it with the
current keys, and hand the matrix to the pure statistics in :mod:`app.analysis.stats`.

Only finished attempts count (submitted, or closed by the clock): an attempt still running
would show its unanswered items as wrong. Each table is read with one query, whatever the
number of attempts or items (the version's item ids go in as a subquery, not as a list).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.analysis.stats import Analysis, ItemSpec, ItemStat, OptionSpec, analyse
from app.bank.models import BankVersion, Item, ItemBank, ItemKind, ItemOption
from app.delivery.models import DONE_STATES, Answer, Attempt, AttemptItem
from app.exports import NumberText, csv_bytes
from app.scoring.engine import ScoredItem, ScoredOption, item_max, item_score
from app.scoring.models import ConstructScore, Result
from app.scoring.validity import withheld
from app.sessions.models import TestSession


@dataclass(frozen=True)
class VersionAnalysis:
    bank_version_id: int
    bank_code: str
    bank_title: str
    version: int
    key_revision: int
    session_code: str | None  # the filter, when one was asked for
    sessions: list[str]  # codes of the sessions with finished attempts on this version
    attempts: int
    analysis: Analysis
    # Finished attempts left out because their result is "tidak dapat dinilai"
    # (app/scoring/validity.py): answers that are not a measurement would bias p and r.
    not_scoreable: int = 0


def _distractor(kind: str, option: ItemOption, top_weight: Decimal | None) -> bool:
    """Which options are meant to draw the weaker takers (see stats.OptionSpec)."""
    if kind == ItemKind.single.value:
        return not option.is_key
    if kind == ItemKind.weighted.value:
        return option.weight is not None and top_weight is not None and option.weight < top_weight
    if kind == ItemKind.multiple.value:
        return option.weight is None or option.weight <= 0
    return False  # Likert categories are a scale, not right and wrong answers


def _labels(response: Any, labels: dict[int, str]) -> list[str]:
    chosen = response if isinstance(response, list) else [response]
    return [labels[r] for r in chosen if isinstance(r, int) and r in labels]


def _not_scoreable(db: Session, attempt_ids: list[int]) -> set[int]:
    """The attempts among these whose result is withheld as not scoreable (validity), unless an
    admin accepted it."""
    found: set[int] = set()
    for start in range(0, len(attempt_ids), 500):
        for attempt_id, detail in db.execute(
                select(Result.attempt_id, Result.detail)
                .where(Result.attempt_id.in_(attempt_ids[start:start + 500]))):
            if withheld((detail or {}).get("validity")):
                found.add(attempt_id)
    return found


def _estimates(db: Session, attempt_ids: list[int], scales: set[str]
               ) -> dict[str, list[tuple[float, float]]]:
    """The stored EAP estimates (theta, SE) of these attempts per construct, where there are
    any (constructs whose items carry IRT parameters)."""
    found: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(attempt_ids), 500):
        for construct, theta, se in db.execute(
                select(ConstructScore.construct, ConstructScore.theta, ConstructScore.theta_se)
                .where(ConstructScore.attempt_id.in_(attempt_ids[start:start + 500]),
                       ConstructScore.construct.in_(sorted(scales)),
                       ConstructScore.theta.is_not(None), ConstructScore.theta_se.is_not(None))):
            if theta is not None and se is not None:  # the query asks for both already
                found.setdefault(construct, []).append((float(theta), float(se)))
    return found


@dataclass(frozen=True)
class Collected:
    """A bank version's items as the statistics see them and the finished attempts' scores."""
    version: BankVersion
    bank: ItemBank
    items: list[Item]
    specs: list[ItemSpec]
    attempt_ids: list[int]  # finished and trusted, in order of the rows below
    scores: list[list[float | None]]
    choices: list[list[list[str] | None]]
    not_scoreable: int


def collect(db: Session, bank_version_id: int, session: TestSession | None) -> Collected | None:
    row = db.execute(select(BankVersion, ItemBank)
                     .join(ItemBank, ItemBank.id == BankVersion.bank_id)
                     .where(BankVersion.id == bank_version_id)).first()
    if row is None:
        return None
    version, bank = row
    rules = dict(version.scoring_rules or {})
    item_ids = select(Item.id).where(Item.bank_version_id == version.id).scalar_subquery()

    items = list(db.scalars(select(Item).where(Item.bank_version_id == version.id)
                            .order_by(Item.code)))
    options: dict[int, list[ItemOption]] = {}
    for option in db.scalars(select(ItemOption).where(ItemOption.item_id.in_(item_ids))
                             .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(option.item_id, []).append(option)

    finished: list[ColumnElement[bool]] = [Attempt.state.in_(DONE_STATES)]
    if session is not None:
        finished.append(Attempt.session_id == session.id)
    presented: dict[int, set[int]] = {}
    for attempt_id, item_id in db.execute(
            select(AttemptItem.attempt_id, AttemptItem.item_id)
            .join(Attempt, Attempt.id == AttemptItem.attempt_id)
            .where(AttemptItem.item_id.in_(item_ids), *finished)):
        presented.setdefault(attempt_id, set()).add(item_id)
    responses: dict[tuple[int, int], Any] = {
        (attempt_id, item_id): response for attempt_id, item_id, response in db.execute(
            select(Answer.attempt_id, Answer.item_id, Answer.response)
            .join(Attempt, Attempt.id == Answer.attempt_id)
            .where(Answer.item_id.in_(item_ids), *finished))}

    specs, scored, labels = [], [], []
    for item in items:
        opts = options.get(item.id, [])
        kind = ItemKind(item.kind).value
        scoring = ScoredItem(kind, tuple(
            ScoredOption(o.id, bool(o.is_key), Decimal(o.weight) if o.weight is not None
                         else None) for o in opts), dict(item.scoring or {}))
        top = max((o.weight for o in opts if o.weight is not None), default=None)
        specs.append(ItemSpec(item.code, item.construct, kind, float(item_max(scoring, rules)),
                              tuple(OptionSpec(o.label, _distractor(kind, o, top))
                                    for o in opts)))
        scored.append(scoring)
        labels.append({o.id: o.label for o in opts})

    untrusted = _not_scoreable(db, list(presented))
    attempt_ids = sorted(set(presented) - untrusted)
    scores: list[list[float | None]] = []
    choices: list[list[list[str] | None]] = []
    for attempt_id in attempt_ids:
        had = presented[attempt_id]
        score_row: list[float | None] = []
        choice_row: list[list[str] | None] = []
        for item, scoring, item_labels in zip(items, scored, labels, strict=True):
            if item.id not in had:
                score_row.append(None)
                choice_row.append(None)
                continue
            response = responses.get((attempt_id, item.id))
            score_row.append(float(item_score(scoring, response, rules)))
            choice_row.append(_labels(response, item_labels) if response not in (None, [])
                              else [])
        scores.append(score_row)
        choices.append(choice_row)
    return Collected(version, bank, items, specs, attempt_ids, scores, choices, len(untrusted))


def version_sessions(db: Session, bank_version_id: int) -> list[str]:
    """Codes of the sessions with finished attempts on this version (the session filters)."""
    item_ids = select(Item.id).where(Item.bank_version_id == bank_version_id).scalar_subquery()
    return list(db.scalars(
        select(TestSession.code).join(Attempt, Attempt.session_id == TestSession.id)
        .join(AttemptItem, AttemptItem.attempt_id == Attempt.id)
        .where(AttemptItem.item_id.in_(item_ids), Attempt.state.in_(DONE_STATES))
        .distinct().order_by(TestSession.code)))


def item_analysis(db: Session, *, session: TestSession | None = None, bank_version_id: int
                  ) -> VersionAnalysis | None:
    """The item analysis of a bank version over the finished attempts (of one session when
    ``session`` is given), scored with the version's current keys and points. None when the
    version does not exist."""
    data = collect(db, bank_version_id, session)
    if data is None:
        return None
    return VersionAnalysis(
        bank_version_id=data.version.id, bank_code=data.bank.code, bank_title=data.bank.title,
        version=data.version.version, key_revision=data.version.key_revision,
        session_code=session.code if session is not None else None,
        sessions=version_sessions(db, data.version.id), attempts=len(data.attempt_ids),
        analysis=analyse(data.specs, data.scores, data.choices,
                         _estimates(db, data.attempt_ids, {i.construct for i in data.items})),
        not_scoreable=data.not_scoreable)


@dataclass(frozen=True)
class ScaleError:
    """The standard error of measurement of one scale on the percent scale its levels are cut
    on (docs/psychometrics.md, "Standard error of measurement beside a level")."""
    scale: str
    method: str  # the classical reliability it comes from: KR-20, alpha, pooled KR-20/alpha
    reliability: float
    sem_percent: float
    persons: int


def measurement_errors(db: Session, bank_version_ids: Iterable[int]
                       ) -> dict[tuple[int, str], ScaleError]:
    """Per (bank version, scale): the classical SEM as percent points of the form's maximum,
    from every trusted finished attempt on the version (the instrument, not one session).
    The marginal reliability is not used here: the levels are cut on the percent score, so
    its error is the one a level carries."""
    found: dict[tuple[int, str], ScaleError] = {}
    for version_id in sorted(set(bank_version_ids)):
        data = collect(db, version_id, None)
        if data is None or not data.attempt_ids:
            continue
        for stat in analyse(data.specs, data.scores).scales:
            maxima = [s.max_score for s in data.specs if s.scale == stat.scale]
            form_max = (sum(maxima) if stat.items_per_person is None
                        else stat.items_per_person * sum(maxima) / len(maxima))
            if stat.sem is None or stat.method is None or stat.reliability is None \
                    or form_max <= 0:
                continue
            found[(version_id, stat.scale)] = ScaleError(
                stat.scale, stat.method, stat.reliability, stat.sem / form_max * 100, stat.n)
    return found


CSV_HEADER = ["item_code", "construct", "kind", "n", "mean", "max_score", "p", "r_corrected",
              "blanks", "options", "flags"]


def _num(value: float | None, places: int = 3) -> str:
    return "" if value is None else f"{value:.{places}f}"


def to_csv(result: VersionAnalysis, items: Sequence[ItemStat] | None = None) -> bytes:
    """One row per item (in ``items`` order, default by code); options as ``A=12;B=3``.
    UTF-8 with a BOM and CRLF, like the results export, so Excel opens it as it is."""
    return csv_bytes(CSV_HEADER, (
        [stat.code, stat.scale, stat.kind, stat.n, NumberText(_num(stat.mean)),
         NumberText(_num(stat.max_score, 2)), NumberText(_num(stat.p)), NumberText(_num(stat.r)),
         stat.blanks, ";".join(f"{o.label}={o.count}" for o in stat.options),
         ";".join(stat.flags)]
        for stat in (items if items is not None else result.analysis.items)))
