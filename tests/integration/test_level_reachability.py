"""Levels that mean the same on every form: a blueprint whose draws cannot reach a level of the
bank's level rule is refused at upload (service, CLI, page) with a located message; the sample
half-day blueprint reaches every level (the best possible answers give level 5, no answers
level 1)."""

from __future__ import annotations

from itertools import combinations

import pytest
import yaml
from sqlalchemy import select

from app.assembly.forms import PoolItem, build_form
from app.assembly.service import import_blueprint
from app.bank.models import Item, ItemOption
from app.bank.parsed import ImportFailed
from app.bank.reading import ImportOptions, read_path
from app.bank.service import import_bank
from app.scoring import engine
from app.scoring.outcomes import construct_outcomes
from app.scoring.service import ScoringCache
from tests.conftest import csrf_from
from tests.factories import bank_zip, run_import
from tests.integration.test_demo_and_cli import cact
from tests.sample_qti import SAMPLES

HALF_DAY = SAMPLES / "cact-setengah-hari.blueprint.yaml"


def numerik_bank(levels: dict) -> dict:
    """20 numerik items of 5 points (raw 0-100), with the given level rule."""
    return {
        "format": "cact-itembank/1",
        "bank": {"code": "UJI-NUM", "title": "Bank numerik uji", "kind": "potensi"},
        "scoring": {"levels": {"potensi.numerik": levels}},
        "items": [{"code": f"NUM-{n:02d}", "kind": "single", "construct": "potensi.numerik",
                   "stem": f"<p>{n} + 1 = ?</p>",
                   "options": [{"id": "A", "text": str(n + 1), "key": True},
                               {"id": "B", "text": str(n + 2)}]} for n in range(1, 21)],
    }


def draw(count: int) -> str:
    return yaml.safe_dump({
        "format": "cact-blueprint/1", "code": "UJI-LEVEL", "name": "Uji level",
        "sections": [{"title": "Numerik", "picks": [
            {"bank": "UJI-NUM", "construct": "potensi.numerik", "count": count}]}]},
        sort_keys=False)


RAW_FOR_20 = {"cut_scores": [30, 50, 70, 85]}  # written for 20 items (raw 0-100)


def test_raw_cut_scores_written_for_more_items_are_refused(db, clock):
    run_import(db, clock, "num.zip", bank_zip(numerik_bank(RAW_FOR_20), media={}))
    with pytest.raises(ImportFailed) as excinfo:
        import_blueprint(db, draw(15), source="bp.yaml", actor="test", now=clock.now())
    [found] = excinfo.value.problems
    assert (found.file, found.location) == ("bp.yaml", "line 7")
    assert found.message == (
        "section 1, pick 1 (potensi.numerik, 15 items): level 5 needs a raw score of at least "
        "85, but the form's maximum for potensi.numerik is 75; give the bank's cut scores as "
        "percents (scale: percent) or draw more items")
    assert found.text("id").startswith("bagian 1, pengambilan ke-1 (potensi.numerik, 15 butir)"
                                       ": level 5 memerlukan skor mentah paling sedikit 85")
    # Drawing all 20 items, the same cut scores are fine.
    import_blueprint(db, draw(20), source="bp.yaml", actor="test", now=clock.now())


def test_percent_cut_scores_hold_for_any_draw_that_can_reach_every_level(db, clock):
    rule = {"scale": "percent", "cut_scores": [30, 50, 70, 85]}
    run_import(db, clock, "num.zip", bank_zip(numerik_bank(rule), media={}))
    import_blueprint(db, draw(15), source="bp.yaml", actor="test", now=clock.now())
    # Three items give 0, 33.3, 66.7 or 100 %: nothing falls in level 4 (70 to below 85 %).
    with pytest.raises(ImportFailed) as excinfo:
        import_blueprint(db, draw(3), source="bp.yaml", actor="test", now=clock.now())
    assert [p.message for p in excinfo.value.problems] == [
        "section 1, pick 1 (potensi.numerik, 3 items): no score the form can give falls in "
        "level 4 (70% to below 85%; the maximum is 15); draw more items or move the bank's "
        "level thresholds"]


def test_cli_refuses_an_unreachable_level(database, clock, tmp_path):
    with database.transaction() as db:
        run_import(db, clock, "num.zip", bank_zip(numerik_bank(RAW_FOR_20), media={}))
    path = tmp_path / "bp.yaml"
    path.write_text(draw(15))
    refused = cact(database.url, "blueprint", "import", str(path))
    assert refused.returncode != 0
    assert "line 7" in refused.stderr and "level 5 memerlukan skor mentah paling sedikit 85" in \
        refused.stderr


def test_upload_page_refuses_an_unreachable_level(admin, database, clock):
    with database.transaction() as db:
        run_import(db, clock, "num.zip", bank_zip(numerik_bank(RAW_FOR_20), media={}))
    token = csrf_from(admin.get("/admin/blueprints").text)
    response = admin.post("/admin/blueprints/upload", data={"csrf_token": token},
                          files={"file": ("bp.yaml", draw(15).encode(), "text/yaml")})
    assert response.status_code == 422
    assert "level 5 memerlukan skor mentah paling sedikit 85" in response.text
    assert "line 7" in response.text or "baris 7" in response.text


def best_response(item) -> object:
    """The response that scores the item's maximum."""
    scored = item.scored
    ids = [o.id for o in scored.options]
    if scored.kind == "multiple":
        candidates = [list(c) for size in range(1, len(ids) + 1) for c in combinations(ids, size)]
    else:
        candidates = ids
    return max(candidates, key=lambda r: engine.item_score(scored, r, None))


@pytest.mark.parametrize("seed", [1, 2, 3, 20261204])
def test_sample_half_day_form_reaches_level_5_and_level_1(db, clock, seed):
    for folder in ("potensi", "kompetensi"):
        import_bank(db, read_path(SAMPLES / folder), source=folder, options=ImportOptions(),
                    actor="test", actor_id=None, now=clock.now())
    blueprint = import_blueprint(db, HALF_DAY.read_text(encoding="utf-8"), source=HALF_DAY.name,
                                 actor="test", now=clock.now())
    options: dict[int, list[int]] = {}
    for item_id, option_id in db.execute(select(ItemOption.item_id, ItemOption.id)
                                         .order_by(ItemOption.item_id, ItemOption.position)):
        options.setdefault(item_id, []).append(option_id)
    pool = [PoolItem(i.id, i.bank_version_id, i.construct, i.level, tuple(options[i.id]))
            for i in db.scalars(select(Item))]
    form = [e.item_id for e in build_form(blueprint.spec, pool, seed)]
    data = ScoringCache(db)
    data.load_items(form)
    best = {}
    for item_id in form:
        item = data.items[item_id]
        response = best_response(item)
        rules = data.versions[item.bank_version_id].rules
        assert engine.item_score(item.scored, response, rules) == data.item_max(item)
        best[item_id] = response
    top = construct_outcomes(data, form, best)
    assert len(top) == 16  # every construct the blueprint draws has a level rule
    assert {o.construct: o.level for o in top} == {o.construct: 5 for o in top}
    assert all(o.raw == o.max_raw for o in top)
    blank = construct_outcomes(data, form, {})
    assert {o.construct: o.level for o in blank} == {o.construct: 1 for o in blank}


@pytest.mark.parametrize(("rule", "needle"), [
    ({"scale": "percent", "cut_scores": [20, 40, 60, 120]}, "four increasing percents"),
    ({"scale": "persen", "cut_scores": [20, 40, 60, 80]}, "scale 'persen' is unknown"),
    ({"scale": "percent", "norm_table": [{"min_raw": 0, "level": 1}]}, "min_percent"),
])
def test_bank_refuses_a_bad_percent_rule(db, clock, rule, needle):
    with pytest.raises(ImportFailed) as excinfo:
        run_import(db, clock, "num.zip", bank_zip(numerik_bank(rule), media={}))
    assert any("scoring.levels.potensi.numerik" in p.message and needle in p.message
               for p in excinfo.value.problems), excinfo.value.problems
