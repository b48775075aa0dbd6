"""Messages in Indonesian (first) and English: the locale files and ``translate``.

A shared module: it imports no domain and no web code, so a service can say something to a
person (a problem message, a card, a report) without importing ``app.web``."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from app import paths

LOCALES_DIR = paths.FRONTEND_DIR / "locales"
LANGUAGES = ("id", "en")


@lru_cache
def messages(lang: str) -> dict[str, str]:
    """{lang}.json plus every {lang}.<area>.json (one file per feature area keeps edits apart)."""
    merged: dict[str, str] = {}
    for path in [LOCALES_DIR / f"{lang}.json", *sorted(LOCALES_DIR.glob(f"{lang}.*.json"))]:
        with path.open(encoding="utf-8") as fh:
            for key, value in json.load(fh).items():
                if key in merged:
                    raise ValueError(f"{path.name}: message {key!r} is defined twice")
                merged[key] = value
    return merged


def translate(lang: str, key: str, **params: Any) -> str:
    """The message for ``key`` in ``lang``, falling back to Indonesian, then to the key."""
    text = messages(lang).get(key) or messages("id").get(key) or key
    return text.format(**params) if params else text
