"""Key positions (*posisi kunci*) and their candidates from a programme: the succession pool.

An admin marks a post to fill ("Kepala Dinas Pendidikan"): a key, a name, a unit and the job
key whose standard it starts from. Its required levels are copied from that job standard (the
``job_standards`` table, else the defaults, as scoring reads them) when it is created, and are
the post's own from then on (:func:`set_required`). Both are audited.

For one position, everyone in a programme whose counted result is trusted (scored, or accepted
by an admin) is read against the position's levels instead of their current job's: the JPM
with the engine's formula and the cap their result was scored with, the gaps per competency,
the category under the programme's purpose, and whether it meets the position's threshold (the
lowest JPM of the purpose's top category: Memenuhi Syarat >= 80 when filling a position,
Optimal >= 90 when mapping). Ranked by that JPM, highest first; ties by fewest negative gaps,
then NIP. Whoever has no trusted result, or no measured level the position requires, is listed
apart and never ranked (docs/psychometrics.md, "Key positions and candidates").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.exports import NumberText, csv_bytes
from app.programmes.models import KeyPosition, Programme
from app.programmes.results import PersonRow, programme_results
from app.programmes.service import ProgrammeError
from app.reports.export import number_text
from app.scoring import engine
from app.scoring.models import JobStandard
from app.scoring.outcomes import job_key
from app.scoring.standards import BASE_LEVELS, COMPETENCIES, default_standards
from app.sessions.scoring_settings import PURPOSES

KEY_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,63}$")
NAME_MAX = 200
# Why a person of the programme is not ranked, in the order the page lists them.
NOT_SCOREABLE, NO_RESULT, NO_LEVELS = "not_scoreable", "no_result", "no_levels"
APART = (NOT_SCOREABLE, NO_RESULT, NO_LEVELS)


def position_by_key(db: Session, key: str) -> KeyPosition | None:
    return db.scalar(select(KeyPosition).where(KeyPosition.key == key.strip().upper()))


def positions(db: Session) -> list[KeyPosition]:
    return list(db.scalars(select(KeyPosition).order_by(KeyPosition.key)))


def job_keys(db: Session) -> list[str]:
    """The job keys a position can start from: the defaults' and any in the table."""
    stored = set(db.scalars(select(JobStandard.job_key).distinct()))
    return sorted(set(BASE_LEVELS) | stored)


def competencies(db: Session) -> list[str]:
    """The competencies a position can require: the standards' and any in the table."""
    stored = set(db.scalars(select(JobStandard.competency).distinct()))
    return list(COMPETENCIES) + sorted(stored - set(COMPETENCIES))


def standard_of(db: Session, key: str) -> dict[str, int]:
    """The required levels of a job key as scoring reads them: the table, else the defaults."""
    levels = {c: level for (k, c), level in default_standards().items() if k == key}
    for row in db.scalars(select(JobStandard).where(JobStandard.job_key == key)):
        levels[row.competency] = row.required_level
    return dict(sorted(levels.items()))


def create_position(db: Session, *, key: str, name: str, unit: str = "", job_key: str,
                    actor: str, now: datetime) -> KeyPosition:
    """A key position with the required levels of ``job_key``'s standard (audited)."""
    key, name, unit, wanted = key.strip().upper(), name.strip(), unit.strip(), job_key.strip()
    if not KEY_RE.match(key):
        raise ProgrammeError("position_key_invalid", code=key[:70])
    if not name:
        raise ProgrammeError("position_name_missing")
    if len(name) > NAME_MAX or len(unit) > NAME_MAX:
        raise ProgrammeError("position_too_long", limit=NAME_MAX)
    if wanted not in job_keys(db):
        raise ProgrammeError("position_job_key", job_key=wanted[:70])
    if position_by_key(db, key) is not None:
        raise ProgrammeError("position_key_taken", code=key)
    required = standard_of(db, wanted)
    position = KeyPosition(key=key, name=name, unit=unit, job_key=wanted, required=required,
                           created_at=now)
    db.add(position)
    db.flush()
    audit.record(db, actor=actor, action="position.create", target=f"position:{key}", now=now,
                 data={"name": name, "unit": unit, "job_key": wanted, "required": required})
    return position


def set_required(db: Session, *, position: KeyPosition, required: dict[str, int], actor: str,
                 now: datetime) -> bool:
    """Replace the position's required levels (levels 1-5 of known competencies, at least
    one); audited with the old and the new. Returns False, recording nothing, when they are
    the same."""
    known = set(competencies(db))
    levels: dict[str, int] = {}
    for competency, level in required.items():
        name = str(competency).strip()
        if name not in known:
            raise ProgrammeError("position_competency", competency=name[:70])
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 5:
            raise ProgrammeError("position_level", competency=name, level=str(level)[:10])
        levels[name] = level
    if not levels:
        raise ProgrammeError("position_required_empty")
    levels = dict(sorted(levels.items()))
    old = dict(position.required or {})
    if old == levels:
        return False
    position.required = levels
    db.flush()
    audit.record(db, actor=actor, action="position.required", target=f"position:{position.key}",
                 now=now, data={"old": old, "new": levels})
    return True


@dataclass
class CandidateRow:
    """One person of the programme read against the position."""
    rank: int
    person: PersonRow
    required: dict[str, int]  # the position's levels over the competencies measured
    achieved: dict[str, int]
    gaps: dict[str, int]  # achieved - required, over ``required``
    jpm: Decimal  # against the position, rounded as stored
    category: str  # under the programme's purpose, from ``jpm``
    meets: bool  # jpm >= the lowest JPM of the purpose's top category
    not_measured: list[str]  # required by the position, not measured for this person

    @property
    def nip(self) -> str:
        return self.person.nip

    @property
    def negative_gaps(self) -> int:
        return sum(1 for g in self.gaps.values() if g < 0)

    @property
    def current_job_key(self) -> str:
        return job_key(self.person.job_group, self.person.grade)


@dataclass
class CandidatePool:
    programme: Programme
    position: KeyPosition
    purpose: str  # the engine's: mapping or placement
    threshold: Decimal  # the lowest JPM that meets it
    threshold_category: str
    ranked: list[CandidateRow]
    apart: dict[str, list[str]] = field(default_factory=dict)  # reason -> NIPs

    @property
    def competencies(self) -> list[str]:
        return sorted(self.position.required or {})

    @property
    def apart_count(self) -> int:
        return sum(len(nips) for nips in self.apart.values())

    @property
    def meeting(self) -> int:
        return sum(1 for r in self.ranked if r.meets)


def purpose_of(programme: Programme) -> str:
    """The programme's purpose as the engine's category table names it."""
    return PURPOSES[programme.purpose.value]


def candidate_pool(db: Session, *, programme: Programme, position: KeyPosition
                   ) -> CandidatePool:
    purpose = purpose_of(programme)
    threshold, top = engine.CATEGORIES[purpose][0]
    wanted = {str(c): int(v) for c, v in (position.required or {}).items()}
    scored: list[CandidateRow] = []
    apart: dict[str, list[str]] = {reason: [] for reason in APART}
    for person in programme_results(db, programme).rows:
        if person.chosen.result is None:
            apart[NO_RESULT].append(person.nip)
            continue
        if not person.chosen.trusted:
            apart[NOT_SCOREABLE].append(person.nip)
            continue
        achieved = person.achieved
        # As scoring does: over the competencies this person's test measured.
        required = {c: wanted[c] for c in sorted(achieved) if c in wanted}
        if not required:
            apart[NO_LEVELS].append(person.nip)
            continue
        cap = bool((person.detail.get("config") or {}).get("jpm_cap", True))
        value = engine.jpm(achieved, required, cap=cap)
        label = engine.category(value, purpose)
        scored.append(CandidateRow(
            rank=0, person=person, required=required,
            achieved={c: achieved[c] for c in required},
            gaps=engine.gaps(achieved, required), jpm=value, category=label,
            meets=value >= threshold,
            not_measured=sorted(c for c in wanted if c not in achieved)))
    scored.sort(key=lambda r: (-r.jpm, r.negative_gaps, r.nip))
    for number, row in enumerate(scored, start=1):
        row.rank = number
    return CandidatePool(programme, position, purpose, threshold, top, scored,
                         {k: v for k, v in apart.items() if v})


def candidates(db: Session, *, programme: Programme, position: KeyPosition
               ) -> list[CandidateRow]:
    """The ranked candidates (:func:`candidate_pool` has those listed apart too)."""
    return candidate_pool(db, programme=programme, position=position).ranked


# -- the file -----------------------------------------------------------------------------------

BASE_COLUMNS = ["rank", "nip", "name", "job_group", "grade", "current_position", "unit",
                "session", "current_job_key", "position_key", "jpm_position", "category",
                "meets_threshold", "negative_gaps", "potensi_band", "nine_box"]


def header(pool: CandidatePool) -> list[str]:
    return BASE_COLUMNS + [f"gap_{c}" for c in pool.competencies]


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return NumberText(number_text(value))
    if isinstance(value, int):
        return NumberText(str(value))
    return str(value)


def values(pool: CandidatePool, row: CandidateRow) -> list[Any]:
    p = row.person
    return [row.rank, p.nip, p.name, p.job_group, p.grade, p.position, p.unit, p.session_code,
            row.current_job_key, pool.position.key, row.jpm, row.category,
            "yes" if row.meets else "no", row.negative_gaps, p.potensi_band, p.nine_box,
            *[row.gaps.get(c) for c in pool.competencies]]


def to_csv(pool: CandidatePool) -> bytes:
    """The ranked candidates, in rank order (those listed apart are not in the file)."""
    return csv_bytes(header(pool), ([_text(v) for v in values(pool, row)]
                                    for row in pool.ranked))


def export_candidates(db: Session, *, programme: Programme, position: KeyPosition, actor: str,
                      now: datetime) -> tuple[CandidatePool, bytes]:
    """The candidates file (CSV), audited: it carries everyone's results."""
    pool = candidate_pool(db, programme=programme, position=position)
    data = to_csv(pool)
    audit.record(db, actor=actor, action="programme.export_candidates",
                 target=f"programme:{programme.code}", now=now,
                 data={"position": position.key, "format": "csv", "rows": len(pool.ranked),
                       "apart": pool.apart_count})
    return pool, data
