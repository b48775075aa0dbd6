"""Admin bank pages: upload with the full error report, browsing, previews with and without
the key, key corrections, export, and bank images served from the database."""

from __future__ import annotations

import io
import zipfile

from sqlalchemy import select

from app.audit import AuditEvent
from app.bank.models import BankVersion, Item
from tests.conftest import csrf_from
from tests.factories import SVG, bank_doc, bank_zip


def upload(client, name, data, **fields):
    token = csrf_from(client.get("/admin/banks").text)
    return client.post("/admin/banks/upload", data={"csrf_token": token, **fields},
                       files={"file": (name, data, "application/octet-stream")},
                       headers={"HX-Request": "true"})


def test_upload_reports_every_problem_then_imports(admin, database):
    doc = bank_doc()
    doc["items"][0]["options"][1].pop("key")
    doc["items"][2]["construct"] = "potensi.entah"
    bad = upload(admin, "uji.zip", bank_zip(doc))
    assert bad.status_code == 422 and "<html" not in bad.text
    assert 'data-testid="problem-table"' in bad.text
    assert "NUM-1" in bad.text and "EMO-1" in bad.text and "baris " in bad.text  # "line"
    with database.transaction(write=False) as s:
        assert s.scalar(select(Item)) is None
    good = upload(admin, "uji.zip", bank_zip())
    assert good.status_code == 200 and "UJI-POT versi 1 tersimpan: 5 butir" in good.text
    again = upload(admin, "uji.zip", bank_zip())
    assert "tidak ada yang berubah" in again.text
    page = admin.get("/admin/banks")
    assert "UJI-POT" in page.text and 'data-testid="banks-table"' in page.text
    assert '<td class="num">5</td>' in page.text  # the newest version's item count


def test_browse_filter_and_preview(admin, database):
    upload(admin, "uji.zip", bank_zip())
    listing = admin.get("/admin/banks/UJI-POT/v/1")
    assert listing.status_code == 200 and "NUM-1" in listing.text and "LIK-1" in listing.text
    filtered = admin.get("/admin/banks/UJI-POT/v/1?kind=weighted",
                         headers={"HX-Request": "true"})
    assert "EMO-1" in filtered.text and "NUM-1" not in filtered.text
    assert "<html" not in filtered.text
    by_construct = admin.get("/admin/banks/UJI-POT/v/1?construct=potensi.figural")
    assert "FIG-1" in by_construct.text and "EMO-1" not in by_construct.text
    with database.transaction(write=False) as s:
        emo = s.scalar(select(Item.id).where(Item.code == "EMO-1"))
        fig = s.scalar(select(Item).where(Item.code == "FIG-1"))
    taker_view = admin.get(f"/admin/items/{emo}")
    assert "mendengarkan" in taker_view.text
    assert 'data-testid="option-key"' not in taker_view.text and "bobot 5" not in taker_view.text
    keyed = admin.get(f"/admin/items/{emo}?key=1")
    assert 'data-testid="option-key"' in keyed.text and "bobot 5" in keyed.text
    assert keyed.headers["cache-control"] == "no-store"
    # Seeing the key is audited like exporting it; the taker view is not.
    with database.transaction(write=False) as s:
        views = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "item.key_view")))
    assert [(v.actor, v.target) for v in views] == [("user:admin", "item:EMO-1")]
    figure = admin.get(f"/admin/items/{fig.id}")
    assert f'src="/media/{fig.bank_version_id}/fig1.svg"' in figure.text
    image = admin.get(f"/media/{fig.bank_version_id}/fig1.svg")
    assert image.status_code == 200 and image.content == SVG
    assert image.headers["content-type"] == "image/svg+xml"
    assert "sandbox" in image.headers["content-security-policy"]
    assert admin.get(f"/media/{fig.bank_version_id}/none.svg").status_code == 404


def test_key_correction_form(admin, database):
    upload(admin, "uji.zip", bank_zip())
    with database.transaction(write=False) as s:
        num = s.scalar(select(Item.id).where(Item.code == "NUM-1"))
        emo = s.scalar(select(Item.id).where(Item.code == "EMO-1"))
    token = csrf_from(admin.get(f"/admin/items/{num}?key=1").text)
    no_reason = admin.post(f"/admin/items/{num}/key", data={"csrf_token": token, "key": "A",
                                                           "reason": ""})
    assert no_reason.status_code == 422
    done = admin.post(f"/admin/items/{num}/key", data={"csrf_token": token, "key": "A",
                                                      "reason": "kunci tertukar"})
    assert done.status_code == 200 and 'data-testid="key-corrected"' in done.text
    assert "kunci tertukar" in done.text
    weights = admin.post(f"/admin/items/{emo}/key", data={
        "csrf_token": token, "weight_A": "4", "weight_B": "2,5", "reason": "panel"})
    assert weights.status_code == 200 and "bobot 2,5" in weights.text
    with database.transaction(write=False) as s:
        assert s.scalar(select(BankVersion.key_revision)) == 2


def test_export_download_is_a_bank_zip(admin, database):
    upload(admin, "uji.zip", bank_zip())
    response = admin.get("/admin/banks/UJI-POT/v/1/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert 'filename="UJI-POT-v1.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["bank.yaml", "media/fig1.svg"]
    with database.transaction(write=False) as s:
        from app.audit import AuditEvent

        assert s.scalar(select(AuditEvent.target).where(AuditEvent.action == "bank.export")
                        ) == "bank:UJI-POT/v1"
    versions = admin.get("/admin/banks/UJI-POT")
    assert 'data-testid="versions-table"' in versions.text


def test_bank_pages_are_admin_only(proctor):
    for path in ("/admin/banks", "/admin/banks/X", "/admin/blueprints", "/admin/items/1",
                 "/admin/help/itembank-format"):
        assert proctor.get(path).status_code == 403, path


def test_format_help_page(admin):
    page = admin.get("/admin/help/itembank-format")
    assert page.status_code == 200 and "cact-itembank/1" in page.text


def test_upload_problems_are_shown_in_the_chosen_language(admin):
    from markupsafe import escape

    from app.web import translate

    doc = bank_doc()
    doc["items"][0]["options"][1].pop("key")  # NUM-1: single choice without a key
    doc["items"][2]["kind"] = "entah"  # EMO-1: unknown kind
    kinds = "single, weighted, multiple, likert"

    def shown(lang: str) -> list[str]:
        return [str(escape(translate(lang, "problem.single_key_missing"))),
                str(escape(translate(lang, "problem.item_kind", kinds=kinds, kind="entah")))]

    bad = upload(admin, "uji.zip", bank_zip(doc))
    assert bad.status_code == 422
    assert "kuncinya belum ada" in bad.text and "kind harus salah satu dari" in bad.text
    for text in shown("id"):
        assert text in bad.text
    token = csrf_from(admin.get("/admin/banks").text)
    switched = admin.post("/lang", data={"lang": "en", "next": "/admin/banks",
                                         "csrf_token": token})
    assert switched.status_code == 200 and 'lang="en"' in switched.text
    english = upload(admin, "uji.zip", bank_zip(doc))
    assert english.status_code == 422
    assert "the key is missing" in english.text and "kind must be one of" in english.text
    for text in shown("en"):
        assert text in english.text
    assert "kuncinya belum ada" not in english.text
