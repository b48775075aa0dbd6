"""The author's option order in form assembly: an item that must not be shuffled keeps its
order, fixed options ("none of the above") keep their place while the others move, and items
without such wishes get exactly the orders they always got from their seed."""

from __future__ import annotations

import random
from dataclasses import replace

from app.assembly.forms import PoolItem, build_form

OPTIONS = (11, 12, 13, 14, 15)
SPEC = {"sections": [{"title": "S", "shuffle_items": False, "shuffle_options": True, "picks": [
    {"bank_version_id": 1, "construct": "potensi.verbal", "count": 1}]}]}
PLAIN = PoolItem(1, 1, "potensi.verbal", None, OPTIONS)


def orders(item: PoolItem) -> list[tuple[int, ...]]:
    return [build_form(SPEC, [item], seed)[0].option_order for seed in range(200)]


def test_fixed_options_keep_their_place_and_the_others_move():
    seen = orders(replace(PLAIN, fixed=frozenset({15})))
    assert all(order[-1] == 15 for order in seen)  # "none of the above" stays last
    assert all(sorted(order) == list(OPTIONS) for order in seen)
    assert len({order[:4] for order in seen}) > 10  # the other four are shuffled


def test_an_item_that_must_not_be_shuffled_keeps_its_order():
    assert set(orders(replace(PLAIN, shuffle=False))) == {OPTIONS}


def test_items_without_wishes_get_the_orders_their_seed_always_gave():
    for seed in range(50):
        rng = random.Random(seed)
        rng.sample([PLAIN], 1)  # the draw, as build_form makes it
        expected = list(OPTIONS)
        rng.shuffle(expected)
        assert build_form(SPEC, [PLAIN], seed)[0].option_order == tuple(expected)
