"""Where a problem is, in the reader's language: the importers locate a problem in English
("row 2, column nip (A)", "line 12", "line 3, column 7"), and the pages show it as
"baris 2, kolom nip (A)" in Indonesian. Translated when it is shown, in this one place, so
the readers (and the command line, which prints the English) keep one plain string.

A location is a list of parts joined by ", "; each part is a known word and its value
(``line``, ``row``, ``column``, ``sheet``, and a blueprint's ``section``). A location that is
anything else (the path of an element in a QTI file, "/assessmentItem/itemBody/...") is shown
as it is.
"""

from __future__ import annotations

import re

from app.i18n import translate

_PART = re.compile(r"(line|row|column|sheet|section) (\S.*)")


def location_text(location: str, lang: str) -> str:
    """``location`` in ``lang`` ("id", "en"); unchanged when it is not made of known parts."""
    if not location:
        return location
    parts = []
    for part in location.split(", "):
        match = _PART.fullmatch(part)
        if match is None:
            return location
        word, value = match.groups()
        parts.append(translate(lang, f"fmt.where_{word}", value=value))
    return ", ".join(parts)
