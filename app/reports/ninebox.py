"""The talent map (nine-box) as a server-rendered SVG: no JavaScript, no chart library, and it
prints the same as it shows.

Performance runs left to right (below / as expected / above expectations), potential bottom
to top (low / medium / high); the box numbers are the talent-management table's (docs/domain.md,
"The talent map"), taken from :data:`app.scoring.engine.NINE_BOX` so the picture and the
scoring can never disagree. Each box is a link to ``#<anchor_prefix><box>`` where the page
lists everybody in that box (the SVG itself shows the first few names and the count).

Every name and label is XML-escaped: names come from an uploaded roster, and the SVG is
embedded in an HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from app.scoring.engine import NINE_BOX, PERFORMANCE_LEVELS

POTENTIAL_LEVELS = ("low", "medium", "high")
BOXES = range(1, 10)

# box -> (column from the left, row from the top)
_POSITION = {box: (PERFORMANCE_LEVELS.index(perf), 2 - POTENTIAL_LEVELS.index(pot))
             for (perf, pot), box in NINE_BOX.items()}

# Warm for the boxes that need action, green for the promotion candidates (7-9).
FILL = {1: "#f6d5d8", 2: "#fbe3c8", 3: "#fbe3c8", 4: "#fff1c2", 5: "#fff1c2", 6: "#fff1c2",
        7: "#d8efdc", 8: "#d8efdc", 9: "#b7e2c0"}

DEFAULT_TEXTS = {
    "performance": "Kinerja",
    "potential": "Potensi",
    "below": "Di bawah ekspektasi",
    "as_expected": "Sesuai ekspektasi",
    "above": "Di atas ekspektasi",
    "low": "Rendah",
    "medium": "Menengah",
    "high": "Tinggi",
    "box": "Kotak {box}",
    "people": "{count} orang",
    "more": "+{count} lainnya",
    "title": "Peta talenta (nine-box)",
}

CELL_W, CELL_H = 190, 150
LEFT, TOP, BOTTOM = 96, 10, 58
WIDTH, HEIGHT = LEFT + 3 * CELL_W + 10, TOP + 3 * CELL_H + BOTTOM
NAME_CHARS = 28  # names longer than this are cut in the box (the list below has them whole)


def _e(text: object) -> str:
    """Escaped for XML text and attribute values (quotes included)."""
    return escape(str(text), quote=True)


def _wrap(text: str, width: int, lines: int) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1].rstrip() + "…"
    return out


def _cut(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1].rstrip() + "…"


def ninebox_groups(placements: Sequence[tuple[str, int]]) -> dict[int, list[str]]:
    """Names per box (every box present, names sorted), for the list the boxes link to.
    Raises ValueError for a box outside 1-9."""
    groups: dict[int, list[str]] = {box: [] for box in BOXES}
    for name, box in placements:
        if box not in groups:
            raise ValueError(f"nine-box number must be 1-9, not {box!r}")
        groups[box].append(name)
    return {box: sorted(names, key=str.casefold) for box, names in groups.items()}


def ninebox_svg(placements: list[tuple[str, int]], labels: dict[int, str], *,
                texts: Mapping[str, str] | None = None, anchor_prefix: str = "ninebox-",
                max_names: int = 4) -> str:
    """The 3x3 grid as an SVG document fragment (``<svg>...</svg>``).

    ``placements`` are (name, box) pairs; ``labels`` the meaning of each box (the agency's
    wording, e.g. "Promosi, kelompok suksesi"); ``texts`` override the axis words
    (:data:`DEFAULT_TEXTS`, Indonesian) for another language.
    """
    words = {**DEFAULT_TEXTS, **(texts or {})}
    groups = ninebox_groups(placements)
    total = sum(len(names) for names in groups.values())
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
         f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="ninebox-title" '
         f'class="ninebox" font-family="Helvetica, Arial, sans-serif" data-total="{total}">'),
        f'<title id="ninebox-title">{_e(words["title"])}</title>',
    ]
    for box in BOXES:
        column, row = _POSITION[box]
        x, y = LEFT + column * CELL_W, TOP + row * CELL_H
        names = groups[box]
        label = labels.get(box, "")
        tooltip = f'{words["box"].format(box=box)}: {label} — ' \
                  f'{words["people"].format(count=len(names))}'
        if names:
            tooltip += ": " + ", ".join(names)
        parts.append(f'<a href="#{_e(anchor_prefix)}{box}">')
        parts.append(f'<g id="ninebox-box-{box}" data-box="{box}" data-count="{len(names)}">')
        parts.append(f"<title>{_e(tooltip)}</title>")
        parts.append(f'<rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" '
                     f'fill="{FILL[box]}" stroke="#5b6675" stroke-width="1"/>')
        parts.append(f'<text x="{x + 8}" y="{y + 24}" font-size="20" font-weight="bold" '
                     f'fill="#1d2a3a">{box}</text>')
        parts.append(f'<text x="{x + CELL_W - 8}" y="{y + 24}" font-size="16" '
                     f'text-anchor="end" fill="#1d2a3a" class="ninebox-count">'
                     f'{_e(words["people"].format(count=len(names)))}</text>')
        line_y = y + 42
        for line in _wrap(label, 30, 2):
            parts.append(f'<text x="{x + 8}" y="{line_y}" font-size="11" fill="#3b4756">'
                         f"{_e(line)}</text>")
            line_y += 13
        line_y += 4
        shown = names[:max_names]
        for name in shown:
            parts.append(f'<text x="{x + 8}" y="{line_y}" font-size="12" fill="#111">'
                         f"{_e(_cut(name))}</text>")
            line_y += 15
        if len(names) > len(shown):
            parts.append(f'<text x="{x + 8}" y="{line_y}" font-size="12" fill="#3b4756" '
                         f'font-style="italic">'
                         f'{_e(words["more"].format(count=len(names) - len(shown)))}</text>')
        parts.append("</g></a>")
    # Axes: level names under the columns and beside the rows, then the axis titles.
    for index, level in enumerate(PERFORMANCE_LEVELS):
        cx = LEFT + index * CELL_W + CELL_W / 2
        parts.append(f'<text x="{cx:g}" y="{TOP + 3 * CELL_H + 18}" font-size="12" '
                     f'text-anchor="middle" fill="#1d2a3a">{_e(words[level])}</text>')
    for index, level in enumerate(POTENTIAL_LEVELS):
        cy = TOP + (2 - index) * CELL_H + CELL_H / 2
        parts.append(f'<text x="{LEFT - 8}" y="{cy:g}" font-size="12" text-anchor="end" '
                     f'fill="#1d2a3a">{_e(words[level])}</text>')
    parts.append(f'<text x="{LEFT + 1.5 * CELL_W:g}" y="{HEIGHT - 12}" font-size="14" '
                 f'font-weight="bold" text-anchor="middle" fill="#1d2a3a">'
                 f'{_e(words["performance"])} →</text>')
    cy = TOP + 1.5 * CELL_H
    parts.append(f'<text x="16" y="{cy:g}" font-size="14" font-weight="bold" '
                 f'text-anchor="middle" fill="#1d2a3a" transform="rotate(-90 16 {cy:g})">'
                 f'{_e(words["potential"])} →</text>')
    parts.append("</svg>")
    return "\n".join(parts)
