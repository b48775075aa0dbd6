"""Numbers and dates as the chosen language writes them, for every page and PDF: Babel with
the CLDR data of ``id_ID`` (81,48 · 1.234,5 · 5 Des 2026 08.07) and ``en`` (81.48 · 1,234.5 ·
Dec 5, 2026, 08:07), instead of each page replacing a point by a comma by hand.

Percentages in this application are points of 0-100 (a JPM of 81.48 is 81.48 %), so
:func:`format_percent` takes those points, not a fraction. Times are in the agency's time zone
(``CACT_TIMEZONE``, Asia/Jakarta by default) and on the 24-hour clock in both languages, as
staff read them.

A shared module: it imports no domain and no web code, so a PDF writer can use it as the pages
do. Files for other programs (CSV) are not formatted here: they keep a point and no grouping,
so that they read back as the numbers they are (app/exports.py).
"""

from __future__ import annotations

import copy
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as _babel_date
from babel.dates import format_skeleton

# The Babel locale of each language of app/i18n.py.
LOCALES = {"id": "id_ID", "en": "en"}
DEFAULT_TIMEZONE = "Asia/Jakarta"

Number = Decimal | float | int


@lru_cache
def locale_of(lang: str) -> Locale:
    """The Babel locale of ``lang`` ("id", "en"); Indonesian for anything else."""
    return Locale.parse(LOCALES.get(lang, LOCALES["id"]))


def _zone(zone: str | tzinfo | None) -> tzinfo:
    if zone is None:
        return ZoneInfo(DEFAULT_TIMEZONE)
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def format_decimal(value: Number, lang: str, places: int | None = None, *,
                   group: bool = True) -> str:
    """``value`` with the language's decimal sign and grouping ("1.234,5" / "1,234.5").

    ``places``: exactly that many decimals (rounded half to even). Without it a Decimal shows
    the digits it has, trailing zeros dropped (5.000 -> "5", 81.48 -> "81,48"), and a float at
    most three. ``group=False`` leaves out the thousands separator, for a value a person edits
    in a form field and the server reads back."""
    # A results table repeats the same few hundred values thousands of times; Babel takes
    # some microseconds for each. The type is part of the key: 5 and 5.0 are equal keys.
    return _decimal(type(value).__name__, value, lang, places, group)


@lru_cache(maxsize=8192)
def _decimal(_kind: str, value: Number, lang: str, places: int | None, group: bool) -> str:
    locale = locale_of(lang)
    pattern = copy.copy(locale.decimal_formats[None])
    if places is not None:
        pattern.frac_prec = (places, places)
        return pattern.apply(value, locale, group_separator=group)
    exact = isinstance(value, (Decimal, int))
    return pattern.apply(value, locale, decimal_quantization=not exact, group_separator=group)


def format_percent(points: Number, lang: str, places: int | None = None) -> str:
    """``points`` of 0-100 as the language writes a percentage ("81,48%" / "81.48%");
    ``places`` as for :func:`format_decimal`."""
    locale = locale_of(lang)
    pattern = copy.copy(locale.percent_formats[None])
    fraction = (points if isinstance(points, Decimal) else Decimal(str(points))) / 100
    if places is not None:
        pattern.frac_prec = (places, places)
        return pattern.apply(fraction, locale)
    return pattern.apply(fraction.normalize(), locale, decimal_quantization=False)


def _local(value: date | datetime, zone: str | tzinfo | None) -> date | datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(_zone(zone))
    return value


def format_date(value: date | datetime, lang: str, zone: str | tzinfo | None = None, *,
                style: str = "medium") -> str:
    """The day of ``value`` (a datetime in the agency's time zone): "5 Des 2026" /
    "Dec 5, 2026"; ``style="long"`` writes the month in full ("5 Desember 2026")."""
    local = _local(value, zone)
    day = local.date() if isinstance(local, datetime) else local
    return _babel_date(day, format=style, locale=locale_of(lang))


def format_time(value: datetime, lang: str, zone: str | tzinfo | None = None, *,
                seconds: bool = False) -> str:
    """The time of day on the 24-hour clock: "08.07" / "08:07" (with seconds: "08.07.05")."""
    local = _local(value, zone)
    return format_skeleton("Hms" if seconds else "Hm", local, locale=locale_of(lang))


def format_datetime(value: datetime, lang: str, zone: str | tzinfo | None = None) -> str:
    """Day and time joined as the language joins them: "5 Des 2026 08.07" /
    "Dec 5, 2026, 08:07"."""
    glue = locale_of(lang).datetime_formats["medium"]
    glue = glue if isinstance(glue, str) else str(glue)
    return glue.replace("{1}", format_date(value, lang, zone)).replace(
        "{0}", format_time(value, lang, zone))
