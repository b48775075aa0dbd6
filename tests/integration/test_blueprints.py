"""Blueprints: YAML import, availability checks, the editor's live counts, and the rule that a
blueprint in use by a session cannot change."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select

from app.assembly.models import Blueprint, BlueprintBankVersion
from app.assembly.service import import_blueprint
from app.bank.parsed import ImportFailed
from app.sessions.models import TestSession
from tests.conftest import csrf_from
from tests.factories import bank_doc, bank_zip, run_import


def blueprint_yaml(**changes) -> str:
    doc = {
        "format": "cact-blueprint/1", "code": "UJI-BP", "name": "Uji",
        "time_limit_minutes": 60,
        "sections": [
            {"title": "Kognitif", "instructions": "<p>Kerjakan <script>x()</script>cepat</p>",
             "time_limit_minutes": 20, "shuffle_items": True, "shuffle_options": False,
             "allow_back": False,
             "picks": [{"bank": "UJI-POT", "construct": "potensi.numerik", "count": 1},
                       {"bank": "UJI-POT", "construct": "potensi.figural", "count": 1}]},
            {"title": "Non-kognitif",
             "picks": [{"bank": "UJI-POT", "version": 1,
                        "construct": "potensi.kecerdasan_emosional", "count": 1}]},
        ],
    }
    doc.update(changes)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def test_import_resolves_versions_and_stores_sections(db, clock):
    outcome = run_import(db, clock, "uji.zip", bank_zip())
    blueprint = import_blueprint(db, blueprint_yaml(), source="uji.yaml", actor="test",
                                 now=clock.now())
    first, second = blueprint.spec["sections"]
    assert blueprint.time_limit_s == 3600
    assert first["time_limit_s"] == 1200 and first["allow_back"] is False
    assert first["shuffle_options"] is False and second["time_limit_s"] is None
    assert first["instructions"] == "<p>Kerjakan cepat</p>"  # sanitized
    assert {p["bank_version_id"] for s in (first, second) for p in s["picks"]} == \
        {outcome.version_id}
    links = db.scalars(select(BlueprintBankVersion.bank_version_id)).all()
    assert links == [outcome.version_id]


@pytest.mark.parametrize(("changes", "needle"), [
    ({"sections": [{"title": "A", "picks": [{"bank": "UJI-POT",
                                               "construct": "potensi.numerik", "count": 2}]}]},
     "ask for 2 items of potensi.numerik but the bank version has only 1"),
    ({"sections": [{"title": "A", "picks": [{"bank": "NOPE", "construct": "potensi.numerik",
                                               "count": 1}]}]}, "bank 'NOPE' does not exist"),
    ({"sections": [{"title": "A", "picks": [{"bank": "UJI-POT", "version": 9,
                                               "construct": "potensi.numerik", "count": 1}]}]},
     "has no version 9"),
    ({"sections": [{"title": "A", "picks": [{"bank": "UJI-POT", "construct": "potensi.numerik",
                                               "level": 4, "count": 1}]}]},
     "no items of potensi.numerik at level 4"),
    ({"sections": [
        {"title": "A", "picks": [{"bank": "UJI-POT", "construct": "potensi.numerik",
                                  "count": 1}]},
        {"title": "B", "picks": [{"bank": "UJI-POT", "construct": "potensi.numerik",
                                  "level": 2, "count": 1}]}]},
     "ask for 2 items of potensi.numerik but the bank version has only 1"),
    ({"code": "lower case"}, "blueprint code"),
    ({"sections": []}, "at least one section"),
])
def test_impossible_blueprints_are_refused(db, clock, changes, needle):
    run_import(db, clock, "uji.zip", bank_zip())
    with pytest.raises(ImportFailed) as excinfo:
        import_blueprint(db, blueprint_yaml(**changes), source="bp.yaml", actor="test",
                         now=clock.now())
    messages = [p.message for p in excinfo.value.problems]
    assert any(needle in m for m in messages), messages
    assert db.scalar(select(Blueprint)) is None


def test_blueprint_in_use_cannot_change(db, clock):
    run_import(db, clock, "uji.zip", bank_zip())
    blueprint = import_blueprint(db, blueprint_yaml(), source="bp.yaml", actor="test",
                                 now=clock.now())
    replaced = import_blueprint(db, blueprint_yaml(name="Uji 2"), source="bp.yaml",
                                actor="test", now=clock.now())
    assert replaced.id == blueprint.id and replaced.name == "Uji 2"
    db.add(TestSession(code="S1", name="s", room="", blueprint_id=blueprint.id,
                       starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=4),
                       created_at=clock.now()))
    db.flush()
    with pytest.raises(ImportFailed, match="problem"):
        import_blueprint(db, blueprint_yaml(name="Uji 3"), source="bp.yaml", actor="test",
                         now=clock.now())


# -- pages --------------------------------------------------------------------------------------


def commit_bank(database, clock, doc=None):
    with database.transaction() as session:
        run_import(session, clock, "uji.zip", bank_zip(doc or bank_doc()))


def test_editor_counts_available_items_live(admin, database, clock):
    commit_bank(database, clock)
    page = admin.get("/admin/blueprints/new")
    assert page.status_code == 200 and 'data-testid="blueprint-editor"' in page.text
    token = csrf_from(page.text)
    form = {"csrf_token": token, "code": "BARU", "name": "Baru", "sections": "1",
            "s0_title": "Potensi", "s0_time": "30", "s0_picks": "1",
            "s0_shuffle_items": "on", "s0_p0_bank": "UJI-POT", "s0_p0_construct": "potensi.numerik",
            "s0_p0_count": "3"}
    update = admin.post("/admin/blueprints/editor", data=form,
                               headers={"HX-Request": "true"})
    assert update.status_code == 200 and "<html" not in update.text
    assert 'data-testid="available-0-0"><span class="over">1</span>' in update.text
    more = admin.post("/admin/blueprints/editor", data={**form, "action": "add_pick:0"},
                             headers={"HX-Request": "true"})
    assert 'data-testid="pick-0-1"' in more.text
    refused = admin.post("/admin/blueprints/save", data=form,
                                headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "hanya memiliki 1" in refused.text
    saved = admin.post("/admin/blueprints/save", data={**form, "s0_p0_count": "1"},
                              follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/blueprints?saved=BARU"
    listing = admin.get("/admin/blueprints")
    assert "BARU" in listing.text and '<td class="num">1</td>' in listing.text
    yaml_text = admin.get("/admin/blueprints/BARU.yaml").text
    assert yaml.safe_load(yaml_text)["sections"][0]["picks"][0]["count"] == 1
    edit = admin.get("/admin/blueprints/BARU/edit")
    assert 'value="BARU" readonly' in edit.text


def test_blueprint_upload_page_reports_problems(admin, database, clock):
    commit_bank(database, clock)
    token = csrf_from(admin.get("/admin/blueprints").text)
    bad = blueprint_yaml(sections=[{"title": "A", "picks": [
        {"bank": "UJI-POT", "construct": "potensi.numerik", "count": 5}]}])
    response = admin.post("/admin/blueprints/upload", data={"csrf_token": token},
                                 files={"file": ("bp.yaml", bad.encode(), "text/yaml")})
    assert response.status_code == 422 and "hanya memiliki 1" in response.text
    good = admin.post("/admin/blueprints/upload", data={"csrf_token": token},
                             files={"file": ("bp.yaml", blueprint_yaml().encode(), "text/yaml")})
    assert good.status_code == 200 and 'data-testid="blueprint-saved"' in good.text
