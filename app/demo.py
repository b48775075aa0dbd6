"""Demo data for a first look and for training proctors: two accounts, a small potensi bank and
a kompetensi bank, a half-day blueprint, and an open session DEMO with 36 participants.

Idempotent: every object is looked up by its natural key first, so running it again adds
nothing and prints the same logins (tokens are decrypted, not regenerated).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint, BlueprintBankVersion
from app.auth import service as auth_service
from app.auth.models import Role, User
from app.auth.security import (
    decrypt_token,
    encrypt_token,
    keyed_digest,
    new_participant_token,
    settings_hasher,
)
from app.bank.models import BankKind, BankVersion, Item, ItemBank, ItemKind, ItemOption
from app.delivery.models import JobGroup, Participant, ProctorAssignment, RosterEntry, TestSession
from app.scoring.standards import COMPETENCIES, load_default_standards
from app.settings import Settings

DEMO_ADMIN = ("admin", "demo-admin-2026", "Admin Demo")
DEMO_PROCTOR = ("pengawas", "demo-pengawas-2026", "Pengawas Demo")
SESSION_CODE = "DEMO"
BLUEPRINT_CODE = "DEMO-CACT"
PARTICIPANT_COUNT = 36

# -- item content (Indonesian) ------------------------------------------------------------------

POTENSI_ITEMS = [
    ("NUM-01", "potensi.numerik", "Jika 3 orang menyelesaikan 12 berkas dalam 2 jam, berapa berkas "
     "yang diselesaikan 5 orang dalam 3 jam dengan kecepatan yang sama?", ["20", "24", "30", "36"], 2),
    ("NUM-02", "potensi.numerik", "Anggaran kegiatan Rp 48 juta telah terserap 35%. Berapa sisa "
     "anggaran?", ["Rp 16,8 juta", "Rp 28,4 juta", "Rp 31,2 juta", "Rp 33,6 juta"], 2),
    ("NUM-03", "potensi.numerik", "Lanjutkan deret: 2, 6, 12, 20, 30, …", ["40", "42", "44", "46"], 1),
    ("NUM-04", "potensi.numerik", "Rata-rata nilai 4 pegawai adalah 80. Satu pegawai baru bernilai "
     "90 bergabung. Berapa rata-rata sekarang?", ["82", "84", "85", "86"], 0),
    ("NUM-05", "potensi.numerik", "Sebuah layanan melayani 150 warga per hari. Setelah perbaikan "
     "alur naik 20%. Berapa warga dilayani per hari?", ["170", "175", "180", "190"], 2),
    ("VER-01", "potensi.verbal", "Sinonim kata <strong>akuntabel</strong> adalah …",
     ["dapat dipertanggungjawabkan", "dapat dihitung", "mudah diakses", "sesuai anggaran"], 0),
    ("VER-02", "potensi.verbal", "Antonim kata <strong>sentralisasi</strong> adalah …",
     ["konsentrasi", "desentralisasi", "integrasi", "koordinasi"], 1),
    ("VER-03", "potensi.verbal", "PERATURAN : UNDANG-UNDANG = … : …",
     ["kota : provinsi", "pasal : ayat", "anggota : ketua", "desa : dusun"], 0),
    ("VER-04", "potensi.verbal", "Semua pegawai yang disiplin mendapat penghargaan. Sebagian "
     "pegawai bagian umum disiplin. Kesimpulan yang tepat adalah …",
     ["Semua pegawai bagian umum mendapat penghargaan",
      "Sebagian pegawai bagian umum mendapat penghargaan",
      "Tidak ada pegawai bagian umum yang mendapat penghargaan",
      "Pegawai yang mendapat penghargaan pasti dari bagian umum"], 1),
    ("VER-05", "potensi.verbal", "Kata baku yang tepat adalah …",
     ["analisa", "apotik", "kualitas", "resiko"], 2),
]

# One situational-judgement item per competency; options carry weights 1-5.
KOMPETENSI_ITEMS = [
    ("integritas", "Rekan kerja meminta Anda menandatangani daftar hadir rapat yang tidak ia "
     "ikuti agar uang transportnya cair. Apa yang Anda lakukan?",
     [("Menolak dan menjelaskan bahwa daftar hadir harus sesuai kenyataan", 5),
      ("Menolak tanpa penjelasan", 3), ("Menandatangani karena hanya sekali", 1),
      ("Meminta atasan yang memutuskan", 2)]),
    ("kerjasama", "Tim Anda harus menyelesaikan laporan bersama, tetapi satu anggota tertinggal. "
     "Apa yang Anda lakukan?",
     [("Mengerjakan bagiannya sendiri diam-diam", 2),
      ("Mengajaknya berdiskusi dan membagi ulang tugas bersama tim", 5),
      ("Melaporkannya kepada atasan", 3), ("Membiarkan karena bukan tanggung jawab Anda", 1)]),
    ("komunikasi", "Warga salah paham atas informasi persyaratan layanan yang Anda sampaikan. "
     "Apa yang Anda lakukan?",
     [("Menjelaskan ulang dengan bahasa sederhana dan memastikan ia mengerti", 5),
      ("Memberikan brosur saja", 3), ("Meminta ia membaca pengumuman", 2),
      ("Menyampaikan bahwa informasi sudah jelas", 1)]),
    ("orientasi_hasil", "Target penyelesaian izin bulan ini terancam tidak tercapai. Apa yang "
     "Anda lakukan?",
     [("Menunggu arahan atasan", 2), ("Menganalisis hambatan dan menyusun langkah percepatan", 5),
      ("Lembur sendiri tanpa perubahan cara kerja", 3), ("Menerima bahwa target terlalu tinggi", 1)]),
    ("pelayanan_publik", "Seorang warga lanjut usia datang saat loket hampir tutup. Apa yang "
     "Anda lakukan?",
     [("Memintanya kembali besok", 2), ("Melayaninya sampai selesai sesuai prosedur", 5),
      ("Memberikan nomor antrean untuk besok pagi", 3), ("Menutup loket tepat waktu", 1)]),
    ("pengembangan_diri", "Unit Anda mulai memakai aplikasi baru yang belum Anda kuasai. Apa "
     "yang Anda lakukan?",
     [("Mempelajarinya dan membantu rekan yang kesulitan", 5),
      ("Menunggu pelatihan resmi", 2), ("Meminta rekan mengerjakan bagian Anda", 1),
      ("Mempelajari seperlunya", 3)]),
    ("mengelola_perubahan", "Prosedur kerja diubah mendadak oleh pimpinan. Apa yang Anda "
     "lakukan?",
     [("Tetap memakai prosedur lama", 1), ("Menyesuaikan diri dan membantu tim memahami perubahan", 5),
      ("Mengikuti sambil mengeluh", 2), ("Mengikuti perubahan untuk pekerjaan sendiri", 3)]),
    ("pengambilan_keputusan", "Dua permohonan mendesak datang bersamaan dan sumber daya hanya "
     "cukup untuk satu. Apa yang Anda lakukan?",
     [("Memilih yang datang lebih dulu", 2), ("Menimbang dampak, aturan, dan risiko, lalu memutuskan", 5),
      ("Menyerahkan kepada atasan", 3), ("Menunda keduanya", 1)]),
    ("perekat_bangsa", "Dalam tim Anda ada pegawai dari berbagai suku dan agama yang berselisih "
     "soal jadwal kegiatan. Apa yang Anda lakukan?",
     [("Memfasilitasi kesepakatan yang menghormati semua pihak", 5),
      ("Mengikuti suara terbanyak", 3), ("Menghindari masalah", 1), ("Meminta atasan mengatur", 2)]),
]

FIRST_NAMES = ["Ahmad", "Siti", "Budi", "Dewi", "Rudi", "Ratna", "Agus", "Nur", "Hendra", "Lestari",
               "Joko", "Wulan", "Yusuf", "Fitri", "Made", "Komang", "Andi", "Rina", "Bayu", "Maria"]
LAST_NAMES = ["Saputra", "Rahmawati", "Santoso", "Lestari", "Hidayat", "Wijaya", "Pratama",
              "Kurniawan", "Simanjuntak", "Nasution", "Siregar", "Wulandari", "Setiawan", "Halim"]
UNITS = ["Badan Kepegawaian Daerah", "Dinas Pendidikan", "Dinas Kesehatan",
         "Dinas Penanaman Modal dan PTSP", "Badan Perencanaan Pembangunan Daerah", "Sekretariat Daerah"]
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
        lines.append(f"  Sesi     : {SESSION_CODE} (open), {len(self.tokens)} peserta; contoh token:")
        for nip, name, token in self.tokens[:5]:
            lines.append(f"    NIP {nip}  token {token}  ({name})")
        lines.append("  (demo passwords are public: never run `cact demo` on a production server)")
        return "\n".join(lines)


def _nip(rng: random.Random, index: int) -> str:
    """A plausible 18-digit NIP: birth date, appointment year-month, sex, serial number."""
    birth = datetime(1970 + rng.randrange(25), 1 + rng.randrange(12), 1 + rng.randrange(28))
    appointed = (birth.year + 23 + rng.randrange(5), 1 + rng.randrange(12))
    sex = 1 + index % 2
    return f"{birth:%Y%m%d}{appointed[0]:04d}{appointed[1]:02d}{sex}{index + 1:03d}"


def _checksum(content: object) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _ensure_user(db: Session, settings: Settings, spec: tuple[str, str, str], role: Role,
                 now: datetime, report: DemoReport) -> User:
    user = db.scalar(select(User).where(User.username == spec[0]))
    if user is None:
        hasher = settings_hasher(settings)
        user = auth_service.create_user(db, hasher=hasher, username=spec[0], password=spec[1],
                                        role=role, full_name=spec[2], actor="demo", now=now)
        report.created.append(f"user {spec[0]}")
    return user


def _ensure_bank(db: Session, code: str, title: str, kind: BankKind, items: list[dict],
                 rules: dict, now: datetime, report: DemoReport) -> BankVersion:
    bank = db.scalar(select(ItemBank).where(ItemBank.code == code))
    if bank is None:
        bank = ItemBank(code=code, title=title, kind=kind, created_at=now)
        db.add(bank)
        db.flush()
    version = db.scalar(select(BankVersion).where(BankVersion.bank_id == bank.id)
                        .order_by(BankVersion.version))
    if version is not None:
        return version
    version = BankVersion(bank_id=bank.id, version=1, checksum=_checksum([items, rules]),
                          frozen=True, scoring_rules=rules, source_filename="demo",
                          created_at=now)
    db.add(version)
    db.flush()
    for spec in items:
        item = Item(bank_version_id=version.id, code=spec["code"], kind=spec["kind"],
                    construct=spec["construct"], level=None, stem=spec["stem"], media=[],
                    scoring={}, tags=["demo"], meta={})
        db.add(item)
        db.flush()
        for pos, (text, is_key, weight) in enumerate(spec["options"]):
            db.add(ItemOption(item_id=item.id, position=pos, label="ABCDE"[pos], content=text,
                              is_key=is_key, weight=weight))
    report.created.append(f"bank {code} ({len(items)} items)")
    return version


def _potensi_items() -> list[dict]:
    return [
        {"code": code, "kind": ItemKind.single, "construct": construct, "stem": stem,
         "options": [(text, i == key, None) for i, text in enumerate(options)]}
        for code, construct, stem, options, key in POTENSI_ITEMS
    ]


def _kompetensi_items() -> list[dict]:
    return [
        {"code": f"SJT-{competency.upper()[:12]}", "kind": ItemKind.weighted,
         "construct": f"kompetensi.{competency}", "stem": stem,
         "options": [(text, False, Decimal(weight)) for text, weight in options]}
        for competency, stem, options in KOMPETENSI_ITEMS
    ]


def load_demo(db: Session, *, settings: Settings, now: datetime) -> DemoReport:
    """Create whatever part of the demo is missing (see module docstring)."""
    report = DemoReport()
    secret = settings.resolved_secret()
    _ensure_user(db, settings, DEMO_ADMIN, Role.admin, now, report)
    proctor = _ensure_user(db, settings, DEMO_PROCTOR, Role.proctor, now, report)

    pot = _ensure_bank(db, "DEMO-POTENSI", "Potensi (contoh)", BankKind.potensi, _potensi_items(),
                       {"points": {"single": {"correct": 5, "wrong": 0}}}, now, report)
    kom = _ensure_bank(db, "DEMO-KOMPETENSI", "Kompetensi manajerial dan sosial kultural (contoh)",
                       BankKind.kompetensi, _kompetensi_items(),
                       {"cut_scores": {f"kompetensi.{c}": [1, 2, 3, 4, 5] for c in COMPETENCIES}},
                       now, report)

    blueprint = db.scalar(select(Blueprint).where(Blueprint.code == BLUEPRINT_CODE))
    if blueprint is None:
        spec = {"sections": [
            {"title": "Potensi", "instructions": "Pilih satu jawaban yang paling tepat.",
             "time_limit_s": 15 * 60, "shuffle_items": True, "shuffle_options": True,
             "allow_back": True,
             "picks": [{"bank_version_id": pot.id, "construct": "potensi.numerik", "count": 5},
                       {"bank_version_id": pot.id, "construct": "potensi.verbal", "count": 5}]},
            {"title": "Kompetensi", "instructions": "Pilih tindakan yang paling mungkin Anda "
             "lakukan dalam situasi tersebut.", "time_limit_s": 20 * 60, "shuffle_items": True,
             "shuffle_options": True, "allow_back": True,
             "picks": [{"bank_version_id": kom.id, "construct": f"kompetensi.{c}", "count": 1}
                       for c in COMPETENCIES]},
        ]}
        blueprint = Blueprint(code=BLUEPRINT_CODE, name="CACT setengah hari (contoh)",
                              description="Potensi dan kompetensi, 35 menit.", time_limit_s=None,
                              spec=spec, created_at=now)
        db.add(blueprint)
        db.flush()
        db.add_all([BlueprintBankVersion(blueprint_id=blueprint.id, bank_version_id=v.id)
                    for v in (pot, kom)])
        report.created.append(f"blueprint {BLUEPRINT_CODE}")

    session = db.scalar(select(TestSession).where(TestSession.code == SESSION_CODE))
    if session is None:
        zone = ZoneInfo(settings.timezone)
        today = now.astimezone(zone).date()
        session = TestSession(
            code=SESSION_CODE, name="Demo CACT", room="Lab Komputer 1", blueprint_id=blueprint.id,
            starts_at=datetime.combine(today, time(7, 30), zone),
            ends_at=datetime.combine(today + timedelta(days=1), time(12, 0), zone),
            state="open", settings={}, created_at=now,
        )
        db.add(session)
        db.flush()
        db.add(ProctorAssignment(session_id=session.id, user_id=proctor.id))
        report.created.append(f"session {SESSION_CODE}")

    rng = random.Random(20261102)  # fixed: the same demo people on every machine
    new_seats = 0
    for index in range(PARTICIPANT_COUNT):
        nip = _nip(rng, index)
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        group, grade, position = JOBS[index % len(JOBS)]
        unit = UNITS[index % len(UNITS)]
        person = db.scalar(select(Participant).where(Participant.nip == nip))
        if person is None:
            person = Participant(nip=nip, name=name, job_group=group, grade=grade,
                                 position=position, unit=unit)
            db.add(person)
            db.flush()
        entry = db.scalar(select(RosterEntry).where(RosterEntry.session_id == session.id,
                                                    RosterEntry.participant_id == person.id))
        if entry is None:
            token = new_participant_token()
            entry = RosterEntry(session_id=session.id, participant_id=person.id,
                                token_hmac=keyed_digest(secret, "participant-token", token),
                                token_encrypted=encrypt_token(secret, token), seat="")
            db.add(entry)
            new_seats += 1
        else:
            token = decrypt_token(secret, entry.token_encrypted)
        report.tokens.append((person.nip, person.name, token))
    if new_seats:
        report.created.append(f"{new_seats} participants in {SESSION_CODE}")
    added = load_default_standards(db)
    if added:
        report.created.append(f"{added} job standards")
    if report.created:
        audit.record(db, actor="demo", action="demo.load", target=f"session:{SESSION_CODE}",
                     now=now, data={"created": report.created})
    return report
