"""The admin pages in Indonesian carry no English: every page an admin reaches from the menu
of the demo (sessions, results, reports, banks and their items, blueprints, analysis,
programmes, talent maps, people, standards, users) is read and its visible text (and its
title, aria-label, placeholder and alt text) searched for English words that a page would
only show if a text did not come from the locale files. Codes (``<code>``) and scripts are
left out. The dashboard, the audit log, the help pages and the proctor's pages are not read
here (#18 translates them on their own)."""

from __future__ import annotations

import html
import re

import pytest

from app.demo import load_demo
from tests.conftest import staff_login

# Words of an untranslated English text; none of them is used in the Indonesian texts.
ENGLISH = re.compile(
    r"\b(the|and|with|from|not|row|line|column|sheet|single|weighted|multiple|failed|held|"
    r"tries|before|after|saved|none|true|false|items|version|scores?|results|sessions?|"
    r"participants?|answered|absent|pending|running|paused|submitted|unknown|minutes|"
    r"seconds|choice|response|options|required|achieved|upload|download|delete|remove|"
    r"show|hide|previous|search)\b")
SKIP = re.compile(r"\.(csv|xlsx|pdf|zip|svg|png|js|css)$|/logout|/audit|/help/|/console"
                  r"|/papan|/media/|/static/|/docs|/api/|/proctor")
MAX_PAGES = 90


def visible_text(page: str) -> list[str]:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    body = re.sub(r"<(code|pre)\b[^>]*>.*?</\1>", " ", body, flags=re.S)
    attributes = re.findall(r'\b(?:title|aria-label|placeholder|alt)="([^"]+)"', body)
    text = re.sub(r"<[^>]+>", "\n", body)
    return [html.unescape(chunk).strip() for chunk in [*text.split("\n"), *attributes]
            if chunk.strip()]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_pages_in_indonesian_have_no_english_text(client, database, settings, clock):
    with database.transaction() as db:
        load_demo(db, settings=settings, now=clock.now())
    assert staff_login(client, "admin", "demo-admin-2026").status_code == 303
    queue = ["/admin/sessions", "/admin/banks", "/admin/blueprints", "/admin/programmes",
             "/admin/standards", "/admin/users", "/admin/positions"]
    seen: set[str] = set()
    english: dict[str, str] = {}
    kinds: dict[str, int] = {}
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen or SKIP.search(path):
            continue
        seen.add(path)
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.headers["content-type"]:
            continue
        for href in re.findall(r'href="(/admin/[^"#?]*)', response.text):
            # a few of the many pages of one kind (items, reports, people) are enough
            kind = re.sub(r"/\d+|/\d{18}", "/N", href)
            if href not in seen and kinds.get(kind, 0) < 3:
                kinds[kind] = kinds.get(kind, 0) + 1
                queue.append(href)
        for chunk in visible_text(response.text):
            if ENGLISH.search(chunk):
                english.setdefault(chunk[:120], path)
    assert len(seen) > 40, sorted(seen)  # the crawl reached the pages it is meant to check
    for expected in ("/admin/sessions/DEMO-LAB/results", "/admin/banks/CONTOH-POTENSI/v/1"):
        assert expected in seen
    assert english == {}, english
