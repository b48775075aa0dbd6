"""How long a large item bank takes to import: parse, validate, sanitize, store.

    .venv/bin/python bench/bank_import.py [--items 5000] [--db postgresql://...]

Generates a CACT bank file with N items (all four kinds, 4-5 options each, HTML stems) and
imports it into a fresh database, timing each stage. Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import yaml

from app.bank import formats
from app.bank.reading import ImportOptions
from app.bank.service import import_bank
from app.bank.validate import validate_bank
from app.clock import SystemClock
from app.db import Database, upgrade

CONSTRUCTS = ["potensi.numerik", "potensi.verbal", "potensi.figural", "potensi.interpersonal"]


def make_bank(n: int) -> str:
    items = []
    for i in range(n):
        kind = ("single", "single", "weighted", "multiple", "likert")[i % 5]
        item = {"code": f"IT-{i:05d}", "kind": kind, "construct": CONSTRUCTS[i % 4],
                "level": 1 + i % 5,
                "stem": f"<p>Soal nomor {i}: <strong>berapa</strong> hasil dari {i} + {i}?</p>"
                        "<table><tr><td>a</td><td>b</td></tr></table>",
                "options": []}
        for j, letter in enumerate("ABCD"):
            option = {"id": letter, "text": f"<p>Pilihan {letter} untuk soal {i}</p>"}
            if kind == "single":
                option["key"] = j == i % 4
            elif kind == "weighted":
                option["weight"] = 1 + (j + i) % 4
            elif kind == "multiple":
                option["points"] = 2 if j < 2 else -1
            item["options"].append(option)
        if kind == "multiple":
            item["scoring"] = {"min": 0, "max": 4}
        items.append(item)
    doc = {"format": "cact-itembank/1",
           "bank": {"code": "BENCH", "title": "Bench", "kind": "potensi"}, "items": items}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    text = make_bank(args.items)
    print(f"bank file: {args.items} items, {len(text) / 1_048_576:.1f} MB of YAML")

    start = time.perf_counter()
    bank, problems = formats.parse_bank_file(text, source="bench.yaml")
    parsed = time.perf_counter()
    problems += validate_bank(bank)
    validated = time.perf_counter()
    assert not problems, problems[:3]
    print(f"parse {parsed - start:.2f} s, validate+sanitize {validated - parsed:.2f} s")

    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite3'}"
    upgrade(url)
    database = Database(url)
    start = time.perf_counter()
    with database.transaction() as db:
        outcome = import_bank(db, {"bench.yaml": text.encode()}, source="bench.yaml",
                              options=ImportOptions(), actor="bench", actor_id=None,
                              now=SystemClock().now())
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"import_bank end to end ({database.engine.dialect.name}): {elapsed:.2f} s for "
          f"{outcome.item_count} items; process peak RSS {peak_kib / 1024:.0f} MB")
    database.dispose()


if __name__ == "__main__":
    main()
