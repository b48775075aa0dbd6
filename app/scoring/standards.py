"""Default required competency levels per job group / functional grade (DOMAIN.md), stored as
a (job_key, competency) -> level table that admins can change."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

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
    existing = {tuple(row) for row in db.execute(select(JobStandard.job_key, JobStandard.competency))}
    added = 0
    for (job_key, competency), level in default_standards().items():
        if (job_key, competency) not in existing:
            db.add(JobStandard(job_key=job_key, competency=competency, required_level=level))
            added += 1
    db.flush()
    return added
