"""Default required competency levels per job group / functional grade (docs/domain.md), stored as
a (job_key, competency) -> level table that admins can change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.scoring.models import JobStandard

MANAGERIAL = (
    "integritas",
    "kerjasama",
    "komunikasi",
    "orientasi_hasil",
    "pelayanan_publik",
    "pengembangan_diri",
    "mengelola_perubahan",
    "pengambilan_keputusan",
)
SOCIO_CULTURAL = ("perekat_bangsa",)
COMPETENCIES = MANAGERIAL + SOCIO_CULTURAL

# job_key: a job group, or "fungsional:<grade>" for functional positions.
BASE_LEVELS = {
    "administrator": 3,
    "pengawas": 2,
    "pelaksana": 1,
    "fungsional:Ahli Utama": 4,
    "fungsional:Ahli Madya": 4,
    "fungsional:Ahli Muda": 3,
    "fungsional:Ahli Pertama": 2,
    "fungsional:Penyelia": 3,
    "fungsional:Mahir": 2,
    "fungsional:Terampil": 1,
    "fungsional:Pemula": 1,
}
EXCEPTIONS = {
    "fungsional:Ahli Utama": {"integritas": 5, "perekat_bangsa": 5},
    "fungsional:Terampil": {"integritas": 2, "kerjasama": 2, "perekat_bangsa": 2},
}


def default_standards() -> dict[tuple[str, str], int]:
    table = {}
    for job_key, level in BASE_LEVELS.items():
        for competency in COMPETENCIES:
            table[(job_key, competency)] = EXCEPTIONS.get(job_key, {}).get(competency, level)
    return table


def load_default_standards(db: Session) -> int:
    """Insert the defaults that are missing; never overwrite an admin's change. Returns the
    number of rows added."""
    existing = {tuple(row)
                for row in db.execute(select(JobStandard.job_key, JobStandard.competency))}
    added = 0
    for (job_key, competency), level in default_standards().items():
        if (job_key, competency) not in existing:
            db.add(JobStandard(job_key=job_key, competency=competency, required_level=level))
            added += 1
    db.flush()
    return added


def load_defaults(db: Session, *, actor: str, now: datetime) -> int:
    """The admin's "load the defaults" (page and ``cact standards load-defaults``): the
    missing defaults added, and an audit row saying how many."""
    added = load_default_standards(db)
    audit.record(db, actor=actor, action="standards.load_defaults", target="job_standards",
                 now=now, data={"added": added})
    return added


@dataclass(frozen=True)
class LevelChange:
    old: int | None
    new: int
    changed: bool


def set_required_level(db: Session, *, job_key: str, competency: str, level: int, actor: str,
                       now: datetime) -> LevelChange:
    """One required level set by an admin (audited with the old value, and whether it was the
    default); setting the level it already has changes and records nothing. Existing results
    change only when the session is rescored."""
    if job_key not in BASE_LEVELS or competency not in COMPETENCIES or not 1 <= level <= 5:
        raise ValueError(f"no standard {job_key}/{competency} at level {level}")
    row = db.scalar(select(JobStandard).where(JobStandard.job_key == job_key,
                                              JobStandard.competency == competency))
    old = row.required_level if row else default_standards().get((job_key, competency))
    if row is not None and row.required_level == level:
        return LevelChange(old, level, changed=False)
    if row is None:
        db.add(JobStandard(job_key=job_key, competency=competency, required_level=level))
    else:
        row.required_level = level
    db.flush()
    audit.record(db, actor=actor, action="standards.edit",
                 target=f"job_standard:{job_key}/{competency}", now=now,
                 data={"job_key": job_key, "competency": competency, "old": old, "new": level,
                       "was_default": row is None})
    return LevelChange(old, level, changed=True)
