"""How long scoring takes without the database: N attempts x M items through the same
computation the scoring service runs per attempt (item scores, construct sums and levels,
potensi aspects and band, gaps, JPM, category, combined JPM, strengths, nine-box).

    .venv/bin/python bench/scoring.py [--attempts 5000] [--items 150] [--seed 20261128]

Data are generated in memory with a fixed seed (the same numbers every run): a form of 60 keyed
cognitive items, non-cognitive potensi items (weighted, multiple-response, Likert) and
situational kompetensi items over the nine competencies. The scoring data (app.scoring.outcomes)
are filled directly, so nothing touches a database: the figure is the scoring arithmetic alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from decimal import Decimal

from app.scoring.engine import ScoredItem, ScoredOption
from app.scoring.outcomes import (
    ItemData,
    ScoringConfig,
    ScoringData,
    VersionData,
    construct_outcomes,
    result_values,
)
from app.scoring.standards import COMPETENCIES, default_standards

COGNITIVE = ("potensi.verbal", "potensi.numerik", "potensi.figural")
NON_COGNITIVE = ("potensi.interpersonal", "potensi.kecerdasan_emosional",
                 "potensi.motivasi_komitmen")
GROUPS = ("administrator", "pengawas", "pelaksana", "fungsional")
GRADES = ("Ahli Muda", "Ahli Pertama", "Penyelia", "Terampil")


def make_items(count: int, rng: random.Random) -> tuple[list[ItemData], dict[int, VersionData]]:
    """Bank version 1 (potensi) and 2 (kompetensi) with ``count`` items in the form."""
    items: list[ItemData] = []
    option_id = 0
    n_cognitive = min(60, count)
    n_kompetensi = (count - n_cognitive) * 7 // 10
    for i in range(count):
        if i < n_cognitive:
            construct, kind, version = COGNITIVE[i % 3], "single", 1
        elif i < count - n_kompetensi:
            construct, version = NON_COGNITIVE[i % 3], 1
            kind = ("weighted", "multiple", "likert")[i % 3]
        else:
            construct, kind, version = f"kompetensi.{COMPETENCIES[i % 9]}", "weighted", 2
        options = []
        key = rng.randrange(5)
        weights = rng.sample([1, 2, 3, 4, 5], 5)
        for j in range(5):
            option_id += 1
            if kind == "single":
                options.append(ScoredOption(option_id, is_key=j == key))
            elif kind == "multiple":
                options.append(ScoredOption(option_id, weight=Decimal((2.5, 2.5, -1, 0, 1)[j])))
            elif kind == "likert":
                options.append(ScoredOption(option_id))
            else:
                options.append(ScoredOption(option_id, weight=Decimal(weights[j])))
        scoring = {"min": 0, "max": 5} if kind == "multiple" else (
            {"reverse": True} if kind == "likert" and i % 2 else {})
        irt = (rng.uniform(0.5, 2.0), rng.uniform(-2, 2), 0.2) if kind == "single" else None
        items.append(ItemData(i + 1, f"IT-{i + 1:03d}", construct, version,
                               ScoredItem(kind, tuple(options), scoring),
                               {o.id: "ABCDE"[n] for n, o in enumerate(options)}, irt))
    levels: dict[str, dict] = {}
    for construct in {it.construct for it in items}:
        maximum = 5 * sum(1 for it in items if it.construct == construct)
        levels[construct] = {"cut_scores": [round(maximum * f) for f in (.3, .5, .7, .85)]}
    rules = {"points": {"single": {"correct": 5, "wrong": 0}}, "levels": levels}
    versions = {1: VersionData(1, "potensi", 0, rules), 2: VersionData(2, "kompetensi", 0, rules)}
    return items, versions


def make_answers(items: list[ItemData], attempts: int, rng: random.Random) -> list[dict]:
    answers = []
    for _ in range(attempts):
        given = {}
        for item in items:
            if rng.random() < 0.05:
                continue  # left blank
            ids = [o.id for o in item.scored.options]
            given[item.id] = (rng.sample(ids, rng.randint(1, 3)) if item.scored.kind == "multiple"
                              else rng.choice(ids))
        answers.append(given)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=5000)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--no-irt", action="store_true",
                        help="items without IRT parameters (no EAP theta)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    items, versions = make_items(args.items, rng)
    if args.no_irt:
        items = [dataclasses.replace(it, irt=None) for it in items]
    answers = make_answers(items, args.attempts, rng)
    people = [(GROUPS[n % 4], GRADES[n % 4] if GROUPS[n % 4] == "fungsional" else "")
              for n in range(args.attempts)]

    data = ScoringData(items={it.id: it for it in items}, versions=versions,
                       standards=default_standards(), table_keys=set())
    config = ScoringConfig()
    form = [it.id for it in items]

    started = time.perf_counter()
    categories: dict[str, int] = {}
    checksum = Decimal(0)
    for (group, grade), given in zip(people, answers, strict=True):
        outcomes = construct_outcomes(data, form, given)
        values = result_values(data, config, job_group=group, grade=grade, outcomes=outcomes,
                               rating=None)
        categories[values.category] = categories.get(values.category, 0) + 1
        checksum += values.total_score
    elapsed = time.perf_counter() - started

    responses = args.attempts * args.items
    theta = "without" if args.no_irt else "with"
    print(f"scored {args.attempts} attempts x {args.items} items = {responses} responses "
          f"in {elapsed:.2f} s ({theta} EAP theta for the keyed potensi constructs)")
    print(f"  {elapsed / args.attempts * 1000:.3f} ms per attempt, "
          f"{responses / elapsed:,.0f} item responses per second")
    print(f"  categories: {dict(sorted(categories.items()))}; sum of totals {checksum} "
          "(the same every run with the same seed)")

    # Item analysis of the same session: item scores, choices, then every statistic.
    from app.analysis.stats import ItemSpec, OptionSpec, analyse
    from app.scoring.engine import item_max, item_score

    started = time.perf_counter()
    rules = versions[1].rules
    specs = [ItemSpec(it.code, it.construct, it.scored.kind,
                      float(item_max(it.scored, rules)),
                      tuple(OptionSpec(it.labels[o.id], distractor=it.scored.kind == "single"
                                       and not o.is_key) for o in it.scored.options))
             for it in items]
    scores, choices = [], []
    for given in answers:
        row_scores, row_choices = [], []
        for it in items:
            response = given.get(it.id)
            row_scores.append(float(item_score(it.scored, response, rules)))
            row_choices.append(None if response is None else (
                [it.labels[r] for r in response] if isinstance(response, list)
                else it.labels[response]))
        scores.append(row_scores)
        choices.append(row_choices)
    analysis = analyse(specs, scores, choices)
    elapsed_analysis = time.perf_counter() - started
    flagged = sum(1 for item in analysis.items if item.flags)
    print(f"item analysis of the same {args.attempts} x {args.items} in {elapsed_analysis:.2f} s "
          f"({len(analysis.scales)} scales, {flagged} items flagged)")
    print(f"scoring + item analysis: {elapsed + elapsed_analysis:.2f} s")


if __name__ == "__main__":
    main()
