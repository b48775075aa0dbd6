"""The constructs an item may measure. Items name one of these (or one their bank declares);
scoring aggregates per construct, and potensi constructs roll up into the eight aspects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Construct:
    code: str
    name_id: str
    name_en: str
    aspect: str  # the reporting aspect (potensi) or the competency itself (kompetensi)


_POTENSI = [
    ("potensi.verbal", "Penalaran verbal", "Verbal reasoning", "kemampuan_intelektual"),
    ("potensi.numerik", "Penalaran numerik", "Numerical reasoning", "kemampuan_intelektual"),
    ("potensi.figural", "Penalaran figural", "Figural reasoning", "kemampuan_intelektual"),
    ("potensi.interpersonal", "Kemampuan interpersonal", "Interpersonal ability",
     "interpersonal"),
    ("potensi.kesadaran_diri", "Kesadaran diri", "Self-awareness", "kesadaran_diri"),
    ("potensi.berpikir_kritis", "Berpikir kritis dan strategis", "Critical and strategic thinking",
     "berpikir_kritis"),
    ("potensi.pemecahan_masalah", "Kemampuan menyelesaikan permasalahan", "Problem solving",
     "pemecahan_masalah"),
    ("potensi.kecerdasan_emosional", "Kecerdasan emosional", "Emotional intelligence",
     "kecerdasan_emosional"),
    ("potensi.belajar_cepat", "Kemampuan belajar cepat dan mengembangkan diri",
     "Learning agility and self-development", "belajar_cepat"),
    ("potensi.motivasi_komitmen", "Motivasi dan komitmen", "Motivation and commitment",
     "motivasi_komitmen"),
]
_KOMPETENSI = [
    ("kompetensi.integritas", "Integritas", "Integrity"),
    ("kompetensi.kerjasama", "Kerja sama", "Teamwork"),
    ("kompetensi.komunikasi", "Komunikasi", "Communication"),
    ("kompetensi.orientasi_hasil", "Orientasi pada hasil", "Results orientation"),
    ("kompetensi.pelayanan_publik", "Pelayanan publik", "Public service"),
    ("kompetensi.pengembangan_diri", "Pengembangan diri dan orang lain",
     "Developing self and others"),
    ("kompetensi.mengelola_perubahan", "Mengelola perubahan", "Managing change"),
    ("kompetensi.pengambilan_keputusan", "Pengambilan keputusan", "Decision making"),
    ("kompetensi.perekat_bangsa", "Perekat bangsa", "National unity (socio-cultural)"),
]

KNOWN_CONSTRUCTS: dict[str, Construct] = {
    code: Construct(code, name_id, name_en, aspect) for code, name_id, name_en, aspect in _POTENSI
} | {
    code: Construct(code, name_id, name_en, code.split(".", 1)[1])
    for code, name_id, name_en in _KOMPETENSI
}
