"""Import problems are translatable: every key the importers use exists in both languages,
and the English text of a key is exactly the ``message`` the importers always produced."""

import json
import re
from pathlib import Path

from app.bank.parsed import Phrase, Problem, problem
from app.i18n import LOCALES_DIR, messages

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["app/bank/archive.py", "app/bank/formats.py", "app/bank/validate.py",
           "app/bank/service.py", "app/bank/reading.py", "app/assembly/service.py",
           "app/assembly/parsing.py", "app/bank/qti.py", "app/bank/qti_item.py",
           "app/bank/yamlio.py", "app/uploads.py", "app/spreadsheets.py",
           "app/scoring/imports.py", "app/sessions/roster.py"]
KEY_ARGUMENT = re.compile(r"""\bkey=["']([a-z0-9_]+)["']""")


def used_keys() -> set[str]:
    found = set()
    for name in SOURCES:
        found |= set(KEY_ARGUMENT.findall((ROOT / name).read_text(encoding="utf-8")))
    return {f"problem.{key}" for key in found}


def test_every_problem_key_used_in_the_code_exists_in_both_languages():
    used = used_keys()
    assert len(used) > 100  # the scan really found the importers' keys
    for lang in ("id", "en"):
        missing = sorted(used - set(messages(lang)))
        assert not missing, f"{lang}: {missing}"


def test_every_problem_message_in_the_locales_is_used():
    # The importers' own file; other areas may keep their problem.* keys in theirs.
    defined = set(json.loads((LOCALES_DIR / "en.problems.json").read_text(encoding="utf-8")))
    assert not sorted(defined - used_keys())


def test_problem_text_follows_the_language_and_keeps_the_english_message():
    made = problem("uji.yaml", "line 3", "NUM-1", key="field_not_number", field="weight",
                   value="x")
    assert made.message == "'weight' must be a number, not 'x'"
    assert made.text("en") == made.message
    assert made.text("id") == "'weight' harus berupa angka, bukan 'x'"
    assert str(made) == "uji.yaml, line 3 [NUM-1]: 'weight' must be a number, not 'x'"


def test_nested_phrases_are_translated_too():
    hint = Phrase(key="construct_did_you_mean", params={"suggestion": "potensi.verbal"})
    made = problem("uji.yaml", "", "X", key="item_construct", construct="potensi.verbl",
                   hint=hint)
    assert made.message == ("unknown construct 'potensi.verbl'; "
                            "did you mean 'potensi.verbal'?")
    assert "tidak dikenal" in made.text("id") and "mungkin maksudnya" in made.text("id")


def test_a_problem_without_key_shows_its_message_in_every_language():
    plain = Problem("f.csv", "row 2", "", "not UTF-8 text")
    assert plain.text("id") == plain.text("en") == "not UTF-8 text"
