"""Every user-facing string exists in Indonesian and English, with the same placeholders."""

import re
import string
from pathlib import Path

from app.i18n import LOCALES_DIR, messages, translate
from app.web import TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[2]
# t("key") with a complete literal key (a key built with ~ is checked per enum below).
KEY_CALL = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_]+)["']\s*[,)]""")
KEY_LITERAL = re.compile(r"""["'](error\.[a-z0-9_]+)["']""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders():
    ids, ens = messages("id"), messages("en")
    assert set(ids) == set(ens), set(ids) ^ set(ens)
    for key in ids:
        assert placeholders(ids[key]) == placeholders(ens[key]), key
        assert ids[key].strip() and ens[key].strip(), key


def test_every_key_used_in_templates_and_code_exists():
    known = set(messages("id"))
    used = set()
    for path in list(TEMPLATES_DIR.rglob("*.html")) + list((ROOT / "app").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        used |= set(KEY_CALL.findall(text))
        if path.suffix == ".py":
            used |= set(KEY_LITERAL.findall(text))
    missing = sorted(used - known)
    assert not missing, f"keys missing from {LOCALES_DIR}: {missing}"
    assert len(used) > 40  # the scan really found the templates


def test_translate_formats_and_falls_back():
    assert translate("en", "error.login_throttled", seconds=30).startswith("Too many")
    assert "30" in translate("id", "error.login_throttled", seconds=30)
    assert translate("en", "no.such_key") == "no.such_key"


def test_keys_built_from_enum_values_exist():
    from app.auth.models import Role
    from app.sessions.models import SessionState

    known = set(messages("id"))
    wanted = {f"role.{r.value}" for r in Role} | {f"state.{s.value}" for s in SessionState}
    wanted |= {f"dashboard.count_{k}" for k in ("sessions", "participants", "banks",
                                                 "blueprints", "users")}
    assert wanted <= known, wanted - known
