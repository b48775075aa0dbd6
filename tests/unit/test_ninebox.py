"""The nine-box SVG: box positions as docs/domain.md numbers them, counts, names, escaping,
edges."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree
import pytest

from app.reports.ninebox import CELL_H, CELL_W, LEFT, TOP, ninebox_groups, ninebox_svg

NS = {"svg": "http://www.w3.org/2000/svg"}
LABELS = {9: "Promosi, kelompok suksesi", 1: "Ditangani sesuai aturan disiplin"}


def parse(svg: str) -> ET.Element:
    return defusedxml.ElementTree.fromstring(svg)  # also proves the document is well-formed XML


def boxes(root: ET.Element) -> dict[int, ET.Element]:
    return {int(g.get("data-box")): g for g in root.iter("{http://www.w3.org/2000/svg}g")}


def test_counts_and_links_per_box():
    placements = [("Ani", 9), ("Budi", 9), ("Citra", 5), ("Dodi", 1), ("Eka", 9)]
    root = parse(ninebox_svg(placements, LABELS))
    found = boxes(root)
    assert sorted(found) == list(range(1, 10))
    counts = {box: int(g.get("data-count")) for box, g in found.items()}
    assert counts == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1, 6: 0, 7: 0, 8: 0, 9: 3}
    assert root.get("data-total") == "5"
    links = [a.get("href") for a in root.iter("{http://www.w3.org/2000/svg}a")]
    assert links == [f"#ninebox-{n}" for n in range(1, 10)]
    nine_text = [t.text for t in found[9].iter("{http://www.w3.org/2000/svg}text")]
    assert "3 orang" in nine_text and "Ani" in nine_text and "Promosi, kelompok suksesi" in \
        nine_text
    assert "Budi" in found[9].find("svg:title", NS).text


def position(group: ET.Element) -> tuple[int, int]:
    rect = group.find("svg:rect", NS)
    return ((float(rect.get("x")) - LEFT) // CELL_W, (float(rect.get("y")) - TOP) // CELL_H)


def test_grid_layout_follows_the_domain_table():
    """Performance left to right (below, as expected, above); potential bottom to top."""
    found = boxes(parse(ninebox_svg([], {})))
    expected = {  # (column, row from the top)
        6: (0, 0), 8: (1, 0), 9: (2, 0),
        3: (0, 1), 5: (1, 1), 7: (2, 1),
        1: (0, 2), 2: (1, 2), 4: (2, 2),
    }
    assert {box: position(g) for box, g in found.items()} == expected


def test_names_are_escaped():
    evil = '<script>alert("x")</script> & Co'
    svg = ninebox_svg([(evil, 7), ("O'Neil \"Q\"", 7)], {7: "<b>retain</b>"},
                      anchor_prefix='x"><script>')
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg and "&amp; Co" in svg
    root = parse(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any(t and t.startswith('<script>alert("x")') for t in texts)  # shown as text
    assert "O'Neil \"Q\"" in texts


def test_many_names_are_summarised_and_long_names_cut():
    people = [(f"Peserta {n:02d}", 8) for n in range(10)] + [("A" * 60, 8)]
    root = parse(ninebox_svg(people, {}, max_names=3))
    texts = [t.text for t in boxes(root)[8].iter("{http://www.w3.org/2000/svg}text")]
    assert "+8 lainnya" in texts and "11 orang" in texts
    assert "A" * 27 + "…" in texts  # sorted first, cut to the box
    groups = ninebox_groups(people)
    assert len(groups[8]) == 11 and groups[1] == []


def test_english_texts():
    svg = ninebox_svg([("Ani", 2)], {}, texts={"performance": "Performance",
                                               "people": "{count} people", "low": "Low"})
    assert "Performance" in svg and "1 people" in svg and ">Low<" in svg


@pytest.mark.parametrize("box", [0, 10, -1, None])
def test_box_outside_the_grid_is_refused(box):
    with pytest.raises(ValueError):
        ninebox_svg([("Ani", box)], {})
