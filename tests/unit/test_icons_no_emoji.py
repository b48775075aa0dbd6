"""Icons come from one SVG sprite (frontend/static/icons.svg), never from emoji: a lab PC with no
emoji font shows an emoji as an empty box. The templates, the scripts, the messages and the
Python that writes HTML have no emoji code point, and every icon a template asks for is a
symbol of the sprite."""

from __future__ import annotations

import re
from pathlib import Path

from defusedxml import ElementTree

ROOT = Path(__file__).resolve().parents[2]
SPRITE = ROOT / "frontend" / "static" / "icons.svg"
SVG = "{http://www.w3.org/2000/svg}"

# Code points that are emoji or are drawn only by emoji/symbol fonts: every plane above the
# BMP (faces, objects, flags, ...), the variation selector that asks for emoji presentation,
# the joiner and keycap marks, and the BMP blocks where emoji live (Miscellaneous Technical,
# Miscellaneous Symbols, Dingbats, Miscellaneous Symbols and Arrows) plus the scattered BMP
# emoji. Plain arrows and dashes (← → ↑ ↓ —) are text and stay allowed.
_SINGLES = {0x203C, 0x2049, 0x2122, 0x2139, 0x2194, 0x2195, 0x2196, 0x2197, 0x2198, 0x2199,
            0x21A9, 0x21AA, 0x24C2, 0x25AA, 0x25AB, 0x25B6, 0x25C0, 0x25FB, 0x25FC, 0x25FD,
            0x25FE, 0x3030, 0x303D, 0x3297, 0x3299, 0xFE0F, 0x200D, 0x20E3}
_RANGES = ((0x2300, 0x23FF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0x10000, 0x10FFFF))


def is_emoji(char: str) -> bool:
    code = ord(char)
    return code in _SINGLES or any(low <= code <= high for low, high in _RANGES)


def _sources() -> list[Path]:
    frontend = ROOT / "frontend"
    files = [*frontend.joinpath("templates").rglob("*.html"),
             *frontend.joinpath("locales").glob("*.json"),
             *(p for p in frontend.joinpath("static").rglob("*.js") if "vendor" not in p.parts),
             *(p for p in frontend.joinpath("static").rglob("*.css") if "vendor" not in p.parts),
             *ROOT.joinpath("app").rglob("*.py")]
    return sorted(files)


def test_the_check_tells_emoji_from_text():
    assert all(is_emoji(c) for c in "\U0001F5BC\u2714\u2715\u26A0\u2705\u274C\u2B50\uFE0F")
    assert not any(is_emoji(c) for c in "A\u00e9\u2190\u2192\u2191\u2193\u2014\u00b7\u2026\u00d7")


def test_no_emoji_in_templates_scripts_messages_or_python():
    sources = _sources()
    assert len(sources) > 100  # the walk found the tree
    found = [f"{path.relative_to(ROOT)}:{number}: U+{ord(char):04X} in {line.strip()[:80]!r}"
             for path in sources
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             for char in line if is_emoji(char)]
    assert found == [], "use an icon from frontend/static/icons.svg instead:\n" + "\n".join(found)


def test_every_icon_used_is_in_the_sprite():
    tree = ElementTree.parse(SPRITE)
    symbols = {s.get("id") for s in tree.getroot().iter(f"{SVG}symbol")}
    assert {"chevron-down", "check", "x", "image", "user"} <= symbols
    for symbol in tree.getroot().iter(f"{SVG}symbol"):
        assert symbol.get("viewBox"), symbol.get("id")
    used: dict[str, set[str]] = {}
    for path in (ROOT / "frontend" / "templates").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"icons\.svg#([\w-]+)", text):
            used.setdefault(name, set()).add(path.name)
        for name in re.findall(r"\bicon\(\"([\w-]+)\"", text):
            used.setdefault(name, set()).add(path.name)
    assert used, "no template uses the sprite"
    missing = {name: sorted(files) for name, files in used.items() if name not in symbols}
    assert missing == {}
