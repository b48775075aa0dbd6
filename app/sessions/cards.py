"""Printable login cards: ten per A4 page (2 x 5), cut along the dashed lines.

Each card has what a participant needs at the lab computer and nothing of the agency's (the
same server runs for any agency): title, session, room, name, NIP, the token in a large
monospace font in two groups (ABCD-EFGH; the login ignores the dash), and one instruction.

fpdf2 ships no Unicode font, and the lab server has no internet to fetch one, so the cards use
the PDF core fonts (Helvetica, Courier: Windows-1252). That covers Indonesian names, and names
with other accents are transliterated (Đặng -> Dang) rather than crashing the whole print run.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from fpdf import FPDF

from app.i18n import translate
from app.sessions.models import TestSession
from app.sessions.roster import TokenRow

COLUMNS, ROWS = 2, 5
PER_PAGE = COLUMNS * ROWS
PAGE_W, PAGE_H = 210.0, 297.0
CARD_W, CARD_H = 95.0, 55.0
MARGIN_X = (PAGE_W - COLUMNS * CARD_W) / 2
MARGIN_Y = (PAGE_H - ROWS * CARD_H) / 2
PAD = 5.0
TEXT_W = CARD_W - 2 * PAD

# Letters Unicode does not decompose into a base letter plus accent.
_SPECIAL = {"Đ": "D", "đ": "d", "Ł": "L", "ł": "l", "ı": "i", "Ħ": "H", "ħ": "h",
            "ẞ": "SS", "Ŋ": "N", "ŋ": "n", "ʼ": "'", "‐": "-", "‑": "-"}


LABELS = ("title", "session", "room", "seat", "nip", "token", "instruction")


def card_labels(lang: str) -> dict[str, str]:
    """The card's words in ``lang`` (the same locale keys as the printable HTML page)."""

    return {name: translate(lang, f"cards.{name}") for name in LABELS}


def group_token(token: str, size: int = 4) -> str:
    """ABCDEFGH -> ABCD-EFGH: easier to read aloud and to type."""
    return "-".join(token[i:i + size] for i in range(0, len(token), size))


def core_font_text(value: str) -> str:
    """``value`` in what the PDF core fonts can show (Windows-1252), transliterating the rest."""
    out = []
    for char in value:
        try:
            char.encode("cp1252")
            out.append(char)
            continue
        except UnicodeEncodeError:
            pass
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char)
                       if not unicodedata.combining(c))
        try:
            base.encode("cp1252")
            out.append(base or "?")
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out)


class _CardPDF(FPDF):
    def fit(self, text: str, width: float, style: str, size: float, smallest: float) -> str:
        """Shrink the font until ``text`` fits; cut it with an ellipsis if even that is not
        enough (a long name must not run into the next card)."""
        text = core_font_text(text)
        while size > smallest:
            self.set_font(style=style, size=size)
            if self.get_string_width(text) <= width:
                return text
            size -= 0.5
        self.set_font(style=style, size=smallest)
        while text and self.get_string_width(text + "...") > width:
            text = text[:-1]
        return text + "..." if text else text


def cards_pdf(*, session: TestSession, rows: Sequence[TokenRow], labels: dict[str, str]) -> bytes:
    """The cards of ``rows`` as a PDF. ``labels`` holds the card's words in the cards'
    language (:func:`card_labels`)."""
    pdf = _CardPDF(orientation="P", unit="mm", format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_title(core_font_text(f"{labels['title']} - {session.code}"))
    pdf.set_creator("CACT")
    for index, row in enumerate(rows):
        slot = index % PER_PAGE
        if slot == 0:
            pdf.add_page()
            _cut_lines(pdf)
        x = MARGIN_X + (slot % COLUMNS) * CARD_W
        y = MARGIN_Y + (slot // COLUMNS) * CARD_H
        _card(pdf, x, y, session, row, labels)
    if not rows:
        pdf.add_page()
    return bytes(pdf.output())


def _cut_lines(pdf: FPDF) -> None:
    pdf.set_draw_color(150, 150, 150)
    pdf.set_line_width(0.2)
    with pdf.local_context():
        pdf.set_dash_pattern(dash=1.5, gap=1.5)
        for col in range(COLUMNS + 1):
            x = MARGIN_X + col * CARD_W
            pdf.line(x, MARGIN_Y, x, MARGIN_Y + ROWS * CARD_H)
        for row in range(ROWS + 1):
            y = MARGIN_Y + row * CARD_H
            pdf.line(MARGIN_X, y, MARGIN_X + COLUMNS * CARD_W, y)


def _text(pdf: _CardPDF, x: float, y: float, text: str, *, family: str = "Helvetica",
          style: str = "", size: float = 9, smallest: float = 6) -> None:
    pdf.set_font(family, style=style, size=size)
    fitted = pdf.fit(text, TEXT_W, style, size, smallest)
    pdf.set_xy(x, y)
    pdf.cell(TEXT_W, size * 0.45, fitted)


def _card(pdf: _CardPDF, x: float, y: float, session: TestSession, row: TokenRow,
          labels: dict[str, str]) -> None:
    left = x + PAD
    pdf.set_text_color(20, 40, 80)
    _text(pdf, left, y + 4, labels["title"], style="B", size=11)
    pdf.set_text_color(0, 0, 0)
    _text(pdf, left, y + 10, f"{labels['session']}: {session.name} ({session.code})", size=8.5)
    place = f"{labels['room']}: {session.room or '-'}"
    if row.seat:
        place += f"    {labels['seat']}: {row.seat}"
    _text(pdf, left, y + 14.5, place, size=8.5)
    _text(pdf, left, y + 19.5, row.name, style="B", size=11, smallest=7)
    _text(pdf, left, y + 25, f"{labels['nip']}: {row.nip}", family="Courier", size=10)
    _text(pdf, left, y + 30.5, labels["token"], size=7.5)
    pdf.set_font("Courier", style="B", size=22)
    pdf.set_xy(left, y + 33.5)
    pdf.cell(TEXT_W, 9, group_token(row.token))
    pdf.set_font("Helvetica", size=7.5)
    pdf.set_xy(left, y + 44)
    pdf.multi_cell(TEXT_W, 3.3, core_font_text(labels["instruction"]))
