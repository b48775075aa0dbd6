"""Demo data for a first look and for training proctors: two accounts, the sample potensi and
kompetensi banks and half-day blueprint from itembank/samples, and an open session DEMO with
36 participants.

Idempotent: every object is looked up by its natural key first, so running it again adds
nothing and prints the same logins (tokens are decrypted, not regenerated).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit, paths
from app.assembly.models import Blueprint
from app.assembly.service import import_blueprint
from app.auth import service as auth_service
from app.auth.models import Role, User
from app.auth.security import decrypt_token, settings_hasher
from app.bank.reading import ImportOptions, read_path
from app.bank.service import import_bank
from app.programmes.service import attach_session, create_programme, programme_by_code
from app.scoring.standards import load_default_standards
from app.sessions.models import JobGroup, Participant, RosterEntry, TestSession
from app.sessions.roster import RosterRow, import_roster
from app.sessions.service import change_state, create_session
from app.settings import Settings

DEMO_ADMIN = ("admin", "demo-admin-2026", "Admin Demo")
DEMO_PROCTOR = ("pengawas", "demo-pengawas-2026", "Pengawas Demo")
SESSION_CODE = "DEMO"
# The programme of the demo: two sessions, two rooms, two days, as a real event is run.
PROGRAMME_CODE = "PEMETAAN-2026"
SECOND_SESSION = "DEMO-LAB"
SECOND_COUNT = 12  # more people, tested on day 2 in the school lab
SAMPLES = paths.ITEMBANK_DIR / "samples"
BLUEPRINT_FILE = "cact-setengah-hari.blueprint.yaml"
BLUEPRINT_CODE = "CACT-SETENGAH-HARI"
PARTICIPANT_COUNT = 36

FIRST_NAMES = ["Ahmad", "Siti", "Budi", "Dewi", "Rudi", "Ratna", "Agus", "Nur", "Hendra", "Lestari",
               "Joko", "Wulan", "Yusuf", "Fitri", "Made", "Komang", "Andi", "Rina", "Bayu", "Maria"]
LAST_NAMES = ["Saputra", "Rahmawati", "Santoso", "Lestari", "Hidayat", "Wijaya", "Pratama",
              "Kurniawan", "Simanjuntak", "Nasution", "Siregar", "Wulandari", "Setiawan", "Halim"]
UNITS = ["Badan Kepegawaian Daerah", "Dinas Pendidikan", "Dinas Kesehatan",
         "Dinas Penanaman Modal dan PTSP", "Badan Perencanaan Pembangunan Daerah",
         "Sekretariat Daerah"]
# (job group, grade, position) mix close to a real event: many supervisors, some functional.
JOBS = (
    [(JobGroup.administrator, "", "Kepala Bagian")] * 8
    + [(JobGroup.pengawas, "", "Kepala Subbagian")] * 16
    + [(JobGroup.fungsional, "Ahli Muda", "Analis Kebijakan Ahli Muda")] * 4
    + [(JobGroup.fungsional, "Ahli Pertama", "Pranata Komputer Ahli Pertama")] * 3
    + [(JobGroup.fungsional, "Terampil", "Arsiparis Terampil")] * 3
    + [(JobGroup.pelaksana, "", "Pengadministrasi Umum")] * 2
)


@dataclass
class DemoReport:
    created: list[str] = field(default_factory=list)
    tokens: list[tuple[str, str, str]] = field(default_factory=list)  # (nip, name, token)

    def describe(self) -> str:
        lines = ["Demo data " + ("loaded: " + ", ".join(self.created) if self.created
                                 else "already present: nothing added")]
        lines.append("")
        lines.append(f"  Admin    : {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")
        lines.append(f"  Pengawas : {DEMO_PROCTOR[0]} / {DEMO_PROCTOR[1]}")
        lines.append(f"  Sesi     : {SESSION_CODE} (open), {len(self.tokens)} peserta;"
                     " contoh token:")
        for nip, name, token in self.tokens[:5]:
            lines.append(f"    NIP {nip}  token {token}  ({name})")
        lines.append(f"  Program  : {PROGRAMME_CODE} (sesi {SESSION_CODE} dan {SECOND_SESSION})")
        lines.append("  (demo passwords are public: never run `cact demo` on a production server)")
        return "\n".join(lines)


def _nip(rng: random.Random, index: int) -> str:
    """A plausible 18-digit NIP: birth date, appointment year-month, sex, serial number."""
    birth = date(1970 + rng.randrange(25), 1 + rng.randrange(12), 1 + rng.randrange(28))
    appointed = (birth.year + 23 + rng.randrange(5), 1 + rng.randrange(12))
    sex = 1 + index % 2
    return f"{birth:%Y%m%d}{appointed[0]:04d}{appointed[1]:02d}{sex}{index + 1:03d}"


def _ensure_user(db: Session, settings: Settings, spec: tuple[str, str, str], role: Role,
                 now: datetime, report: DemoReport) -> User:
    user = db.scalar(select(User).where(User.username == spec[0]))
    if user is None:
        hasher = settings_hasher(settings)
        user = auth_service.create_user(db, hasher=hasher, username=spec[0], password=spec[1],
                                        role=role, full_name=spec[2], actor="demo", now=now)
        report.created.append(f"user {spec[0]}")
    return user


def _ensure_bank(db: Session, folder: str, now: datetime, report: DemoReport) -> int:
    outcome = import_bank(db, read_path(SAMPLES / folder), source=f"itembank/samples/{folder}",
                          options=ImportOptions(), actor="demo", actor_id=None, now=now)
    if outcome.created:
        report.created.append(f"bank {outcome.bank_code} ({outcome.item_count} items)")
    return outcome.version_id


def _people(first: int, count: int) -> list[RosterRow]:
    """The demo's people number ``first`` to ``first + count - 1``: the same on every machine
    and every run (each number has its own random stream)."""
    rows = []
    for index in range(first, first + count):
        rng = random.Random(20261102 + index)  # noqa: S311 - fixed demo data, not a secret
        group, grade, position = JOBS[index % len(JOBS)]
        rows.append(RosterRow(nip=_nip(rng, index),
                              name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                              job_group=group.value, grade=grade, position=position,
                              unit=UNITS[index % len(UNITS)]))
    return rows


def _ensure_programme(db: Session, settings: Settings, blueprint: Blueprint, proctor: User,
                      first: TestSession, secret: str, now: datetime,
                      report: DemoReport) -> None:
    """The programme PEMETAAN-2026 with DEMO (day 1, Lab Komputer 1) and DEMO-LAB (day 2, the
    school lab, scheduled) and its own people."""
    programme = programme_by_code(db, PROGRAMME_CODE)
    if programme is None:
        zone = ZoneInfo(settings.timezone)
        today = now.astimezone(zone).date()
        programme = create_programme(
            db, code=PROGRAMME_CODE, name="Pemetaan Potensi dan Kompetensi ASN 2026",
            purpose="mapping", agency="Pemerintah Kota Demo", starts_on=today,
            ends_on=today + timedelta(days=2), actor="demo", now=now)
        report.created.append(f"programme {PROGRAMME_CODE}")
    second = db.scalar(select(TestSession).where(TestSession.code == SECOND_SESSION))
    if second is None:
        zone = ZoneInfo(settings.timezone)
        day = now.astimezone(zone).date() + timedelta(days=2)
        second = create_session(
            db, code=SECOND_SESSION, name="Demo CACT hari 2", room="Lab Komputer SMA Negeri 1",
            blueprint_code=blueprint.code, starts_at=datetime.combine(day, time(8, 0), zone),
            ends_at=datetime.combine(day, time(12, 0), zone),
            proctor_usernames=[proctor.username], actor="demo", now=now)
        import_roster(db, session=second, rows=_people(PARTICIPANT_COUNT, SECOND_COUNT),
                      secret=secret, actor="demo", now=now)
        report.created.append(f"session {SECOND_SESSION} ({SECOND_COUNT} participants)")
    for session in (first, second):
        if session.programme_id is None:
            attach_session(db, programme=programme, session=session, actor="demo", now=now)


def load_demo(db: Session, *, settings: Settings, now: datetime) -> DemoReport:
    """Create whatever part of the demo is missing (see module docstring)."""
    report = DemoReport()
    secret = settings.resolved_secret()
    _ensure_user(db, settings, DEMO_ADMIN, Role.admin, now, report)
    proctor = _ensure_user(db, settings, DEMO_PROCTOR, Role.proctor, now, report)

    _ensure_bank(db, "potensi", now, report)
    _ensure_bank(db, "kompetensi", now, report)
    blueprint = db.scalar(select(Blueprint).where(Blueprint.code == BLUEPRINT_CODE))
    if blueprint is None:
        path = SAMPLES / BLUEPRINT_FILE
        blueprint = import_blueprint(db, path.read_text(encoding="utf-8"), source=path.name,
                                     actor="demo", now=now)
        report.created.append(f"blueprint {BLUEPRINT_CODE}")

    session = db.scalar(select(TestSession).where(TestSession.code == SESSION_CODE))
    if session is None:
        zone = ZoneInfo(settings.timezone)
        today = now.astimezone(zone).date()
        session = create_session(
            db, code=SESSION_CODE, name="Demo CACT", room="Lab Komputer 1",
            blueprint_code=blueprint.code, starts_at=datetime.combine(today, time(7, 30), zone),
            ends_at=datetime.combine(today + timedelta(days=1), time(12, 0), zone),
            proctor_usernames=[proctor.username], actor="demo", now=now)
        change_state(db, session=session, action="open", actor="demo", now=now)
        report.created.append(f"session {SESSION_CODE}")

    rng = random.Random(20261102)  # noqa: S311 - fixed: the same demo people on every machine
    rows = []
    for index in range(PARTICIPANT_COUNT):
        group, grade, position = JOBS[index % len(JOBS)]
        rows.append(RosterRow(nip=_nip(rng, index),
                              name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                              job_group=group.value, grade=grade, position=position,
                              unit=UNITS[index % len(UNITS)]))
    before = db.scalar(select(func.count()).select_from(RosterEntry)
                       .where(RosterEntry.session_id == session.id)) or 0
    if before < len(rows):
        added, _ = import_roster(db, session=session, rows=rows, secret=secret, actor="demo",
                                 now=now)
        report.created.append(f"{added} participants in {SESSION_CODE}")
    for entry, person in db.execute(
            select(RosterEntry, Participant)
            .join(Participant, Participant.id == RosterEntry.participant_id)
            .where(RosterEntry.session_id == session.id).order_by(RosterEntry.id)):
        report.tokens.append((person.nip, person.name,
                              decrypt_token(secret, entry.token_encrypted)))
    _ensure_programme(db, settings, blueprint, proctor, session, secret, now, report)
    added = load_default_standards(db)
    if added:
        report.created.append(f"{added} job standards")
    if report.created:
        audit.record(db, actor="demo", action="demo.load", target=f"session:{SESSION_CODE}",
                     now=now, data={"created": report.created})
    return report
