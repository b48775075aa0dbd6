"""Form building keeps the items of one passage together (in bank order, where the first of
them was drawn) and draws nothing for it: forms without passages are what they always were."""

from __future__ import annotations

from app.assembly.forms import PoolItem, build_form, keep_passages_together


def pool(passages: dict[int, str]) -> list[PoolItem]:
    return [PoolItem(n, 1, "potensi.verbal", None, (10 * n + 1, 10 * n + 2),
                     passage=passages.get(n)) for n in range(1, 13)]


SPEC = {"sections": [{"picks": [{"bank_version_id": 1, "construct": "potensi.verbal",
                                 "count": 12}]}]}


def test_a_passage_group_is_contiguous_in_bank_order_at_its_first_place():
    items = pool({3: "A", 7: "A", 11: "A", 5: "B", 9: "B"})
    shuffled = [items[i - 1] for i in (9, 1, 11, 2, 3, 12, 5, 4, 7, 6, 8, 10)]
    ids = [i.id for i in keep_passages_together(shuffled)]
    assert ids == [5, 9, 1, 3, 7, 11, 2, 12, 4, 6, 8, 10]


def test_the_same_code_in_two_bank_versions_is_two_passages():
    items = [PoolItem(1, 1, "c", None, (), passage="A"), PoolItem(2, 2, "c", None, ()),
             PoolItem(3, 2, "c", None, (), passage="A"), PoolItem(4, 1, "c", None, (),
                                                                  passage="A")]
    assert [i.id for i in keep_passages_together(items)] == [1, 4, 2, 3]


def test_without_passages_the_form_is_unchanged_by_the_option():
    plain = pool({})
    for seed in range(30):
        kept = build_form(SPEC, plain, seed)
        off = build_form({"sections": [{**SPEC["sections"][0], "keep_passages": False}]},
                         plain, seed)
        assert kept == off


def test_every_form_keeps_the_groups_and_still_varies():
    items = pool({2: "A", 4: "A", 6: "A", 8: "B", 10: "B"})
    seen = set()
    for seed in range(40):
        ids = [e.item_id for e in build_form(SPEC, items, seed)]
        for group in ([2, 4, 6], [8, 10]):
            start = ids.index(group[0])
            assert ids[start:start + len(group)] == group, (seed, ids)
        seen.add(tuple(ids))
        # The same seed rebuilds the same form (disputes, rescoring).
        assert [e.item_id for e in build_form(SPEC, items, seed)] == ids
    assert len(seen) > 30
