"""The report's recommendation text: by category (both purposes), development areas and the
nine-box action, in Indonesian by default and in English."""

import pytest

from app.i18n import messages
from app.reports.service import box_action, box_placement, category_tier, recommendation
from app.scoring.engine import CATEGORIES


def test_every_category_has_a_tier_and_a_text_in_both_languages():
    for purpose, bands in CATEGORIES.items():
        for (_, label), tier in zip(bands, ("high", "middle", "low"), strict=True):
            assert category_tier(label) == (purpose, tier)
            for lang in ("id", "en"):
                assert f"recommend.{purpose}_{tier}" in messages(lang)
                assert recommendation(category=label, nine_box=None, lang=lang)
    assert category_tier("") is None and category_tier("Bagus") is None


def test_indonesian_by_default_with_focus_and_box():
    text = recommendation(category="Kurang Optimal", nine_box=3,
                          development=["Kerja sama", "Integritas"])
    assert text.startswith("Kompetensi belum sesuai dengan standar jabatan (Kurang Optimal).")
    assert "Prioritas pengembangan: Kerja sama, Integritas." in text
    assert text.endswith("Peta talenta kotak 3: Bimbingan kinerja/konseling, pengembangan "
                         "kompetensi.")


def test_english_and_placement_purpose():
    text = recommendation(category="Memenuhi Syarat", nine_box=9, development=[], lang="en")
    assert text == ("Meets the requirements of the intended position (Memenuhi Syarat). "
                    "Talent map box 9: Promote, retain, succession pool, award.")


def test_nothing_to_recommend_without_category_or_box():
    assert recommendation(category="", nine_box=None, development=["Integritas"]) == ""
    # A box alone (kinerja known, no competency measured) still gives its action.
    assert recommendation(category="", nine_box=5) == (
        "Peta talenta kotak 5: Penempatan yang sesuai, bimbingan kinerja, pengembangan "
        "kompetensi.")


def test_every_box_has_an_action_and_a_place_in_both_languages():
    for box in range(1, 10):
        for lang in ("id", "en"):
            assert box_action(box, lang) != f"talent.box_{box}_action"
            assert box_placement(box, lang) != f"talent.box_{box}_place"
    assert box_action(1) == "Ditangani sesuai ketentuan disiplin pegawai"
    assert box_placement(9, "en") == "Performance above expectations, potential high"
    with pytest.raises(ValueError):
        box_action(0)
