"""Form building is reproducible from the seed, respects picks and section settings, and gives
neighbours different orders."""

import pytest

from app.assembly.forms import FormError, PoolItem, build_form


def pool():
    items = []
    next_id = 1
    for construct, levels in (("potensi.numerik", [1, 2, 3, 3, 3, 4, 5, 2, 1, 2]),
                              ("kompetensi.integritas", [None] * 6)):
        for level in levels:
            items.append(PoolItem(next_id, 7, construct, level,
                                  tuple(range(next_id * 10, next_id * 10 + 4))))
            next_id += 1
    return items


SPEC = {"sections": [
    {"title": "Potensi", "shuffle_items": True, "shuffle_options": True, "picks": [
        {"bank_version_id": 7, "construct": "potensi.numerik", "count": 5},
        {"bank_version_id": 7, "construct": "potensi.numerik", "level": 3, "count": 2}]},
    {"title": "Kompetensi", "shuffle_items": False, "shuffle_options": False, "picks": [
        {"bank_version_id": 7, "construct": "kompetensi.integritas", "count": 6}]},
]}


def test_same_seed_same_form():
    assert build_form(SPEC, pool(), 12345) == build_form(SPEC, list(reversed(pool())), 12345)


def test_picks_sections_and_positions():
    form = build_form(SPEC, pool(), 99)
    by_id = {i.id: i for i in pool()}
    assert [e.position for e in form] == list(range(1, 14))
    first = [e for e in form if e.section == 0]
    assert len(first) == 7 and len({e.item_id for e in form}) == 13  # no item twice
    assert sum(by_id[e.item_id].level == 3 for e in first) >= 2
    second = [e for e in form if e.section == 1]
    assert [e.item_id for e in second] == sorted(e.item_id for e in second)  # not shuffled
    assert all(e.option_order == by_id[e.item_id].option_ids for e in second)
    for entry in first:
        assert sorted(entry.option_order) == sorted(by_id[entry.item_id].option_ids)


def test_neighbours_usually_see_different_orders():
    forms = {tuple((e.item_id, e.option_order) for e in build_form(SPEC, pool(), seed))
             for seed in range(20)}
    assert len(forms) == 20


def test_levelled_pick_is_served_first():
    # Only three level-3 items exist; the unlevelled pick must not take them all.
    for seed in range(50):
        build_form(SPEC, pool(), seed)


def test_not_enough_items_is_an_error():
    spec = {"sections": [{"picks": [{"bank_version_id": 7, "construct": "potensi.numerik",
                                      "level": 5, "count": 2}]}]}
    with pytest.raises(FormError, match="needs 2 items, 1 left"):
        build_form(spec, pool(), 1)
