"""The item bank format guide as an admin sees it (SQLite and PostgreSQL): docs/itembank-format.md
rendered to HTML, in Indonesian from docs/itembank-format.id.md when that is the chosen language,
in English otherwise; raw HTML in a document is shown as text and unsafe links are dropped."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import log_in_admin
from tests.integration.test_web import csp_problems

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _headings(html: str, level: int) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(rf"<h{level}>(.*?)</h{level}>", html)]


def _source_headings(path: Path, level: int) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [line[level + 1:].strip() for line in text.splitlines()
            if line.startswith("#" * level + " ")]


def test_the_guide_is_html_in_indonesian_and_in_english(client, make_user):
    log_in_admin(client, make_user)
    page = client.get("/admin/help/itembank-format")
    assert page.status_code == 200 and csp_problems(page.text) == []
    assert _headings(page.text, 1) == ["Format bank soal"]
    assert _headings(page.text, 2) == _source_headings(DOCS / "itembank-format.id.md", 2)
    assert {"Berkas bank CACT", "Versi", "Kisi-kisi", "Ekspor"} <= set(_headings(page.text, 2))
    assert '<article class="doc-md" lang="id"' in page.text
    assert "# Item bank format" not in page.text and "## " not in page.text  # no raw Markdown
    assert '<code class="language-yaml">format: cact-itembank/1' in page.text
    assert "<table>" in page.text and "<th>kolom</th>" in page.text
    assert "&lt;p&gt;Lanjutkan deret" in page.text  # HTML inside code stays text
    assert 'data-testid="help-untranslated"' not in page.text

    client.cookies.set("cact_lang", "en")
    english = client.get("/admin/help/itembank-format").text
    assert _headings(english, 1) == ["Item bank format"]
    assert _headings(english, 2) == _source_headings(DOCS / "itembank-format.md", 2)
    assert {"CACT bank file", "Versions", "Blueprints", "Export"} <= set(_headings(english, 2))
    assert '<article class="doc-md" lang="en"' in english


def test_the_translation_has_every_section_of_the_original():
    """A section added to the English guide needs its Indonesian translation too."""
    for level in (2, 3):
        original = _source_headings(DOCS / "itembank-format.md", level)
        translated = _source_headings(DOCS / "itembank-format.id.md", level)
        assert len(translated) == len(original), (level, original, translated)


def test_raw_html_and_script_links_in_a_document_stay_inert(client, make_user, tmp_path,
                                                             monkeypatch):
    from app.bank import routes

    doc = tmp_path / "itembank-format.md"
    doc.write_text("# Judul\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
                   "[klik](javascript:alert(3)) and *ok*\n", encoding="utf-8")
    monkeypatch.setattr(routes, "FORMAT_DOC", doc)  # no .id.md beside it: English, with a note
    log_in_admin(client, make_user)
    page = client.get("/admin/help/itembank-format").text
    assert "<h1>Judul</h1>" in page and "<em>ok</em>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert 'href="javascript:' not in page
    assert 'data-testid="help-untranslated"' in page and "belum tersedia" in page
