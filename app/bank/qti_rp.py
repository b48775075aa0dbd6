"""QTI response processing written out in full, read by running it: a small evaluator for
the subset choice items use (conditions, null checks, matching the correct response, membership,
mapping, sums, outcome values), run for every possible response of the item. What it gives
for each response decides how the item is imported (``derive``):

- single cardinality: one choice scores more than 0 and the others 0 -> a keyed item; choices
  with scores >= 0 -> a weighted item with those weights;
- multiple cardinality: only one set of choices scores more than 0 -> all or nothing with that
  set keyed; a tree that applies the mapping -> the mapping;
- anything else (a blank that scores, negative single scores, a score that depends on the
  order or on something the scorer cannot express) -> refused, naming why.

Tags are QTI 2.x names (``app.bank.qti_item.Doc`` renames 3.0's). Nothing here runs code from
the file: elements outside the subset stop the evaluation with the element named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import combinations
from typing import Any
from xml.etree.ElementTree import Element

RESPONSE = "RESPONSE"
MAX_CHOICES = 10  # 2^10 sets of choices at most to run


class NotEvaluable(Exception):
    """An element the evaluator does not run (the caller names it to the author)."""

    def __init__(self, element: Element, reason: str) -> None:
        super().__init__(reason)
        self.element, self.reason = element, reason


class _Exit(Exception):
    pass


@dataclass(frozen=True)
class Mapping_:
    entries: Mapping[str, Decimal]
    default: Decimal = Decimal(0)
    lower: Decimal | None = None
    upper: Decimal | None = None

    def apply(self, response: Any) -> Decimal:
        chosen = [] if response is None else (
            sorted(response) if isinstance(response, frozenset) else [response])
        total = sum((self.entries.get(c, self.default) for c in chosen), Decimal(0))
        if self.lower is not None:
            total = max(total, self.lower)
        if self.upper is not None:
            total = min(total, self.upper)
        return total


@dataclass
class _State:
    response: Any
    correct: Any
    mapping: Mapping_ | None
    outcomes: dict[str, Any] = field(default_factory=dict)
    name: str = RESPONSE  # the interaction's response identifier


def _number(element: Element, text: str | None) -> Decimal:
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        raise NotEvaluable(element, f"not a number: {text!r}") from None
    if not value.is_finite():
        raise NotEvaluable(element, f"not a number: {text!r}")
    return value


def _is_null(value: Any) -> bool:
    return value is None or value == "" or value == frozenset()


def _expression(element: Element, state: _State) -> Any:
    tag = element.tag
    children = list(element)
    if tag == "baseValue":
        kind = element.get("baseType") or ""
        if kind in ("float", "integer"):
            return _number(element, element.text)
        if kind == "boolean":
            return (element.text or "").strip() == "true"
        if kind == "identifier":
            return (element.text or "").strip()
        raise NotEvaluable(element, f"baseType {kind!r}")
    if tag == "variable":
        name = element.get("identifier") or ""
        if name == state.name:
            return state.response
        if name in state.outcomes:
            return state.outcomes[name]
        raise NotEvaluable(element, f"variable {name!r}")
    if tag == "correct":
        return state.correct
    if tag == "mapResponse":
        if state.mapping is None:
            raise NotEvaluable(element, "mapResponse without a mapping")
        return state.mapping.apply(state.response)
    values = [_expression(child, state) for child in children]
    if tag == "isNull":
        return _is_null(values[0]) if len(values) == 1 else _bad(element)
    if tag == "match":
        if len(values) != 2:
            return _bad(element)
        return None if any(_is_null(v) for v in values) else values[0] == values[1]
    if tag == "member":
        if len(values) != 2 or not isinstance(values[1], frozenset):
            return _bad(element)
        return None if _is_null(values[0]) else values[0] in values[1]
    if tag in ("and", "or"):
        truths = [v is True for v in values]
        return all(truths) if tag == "and" else any(truths)
    if tag == "not":
        return None if values[0] is None else not values[0]
    if tag == "multiple":  # a container of values, e.g. identifiers for member/match
        return frozenset(v for v in values if not _is_null(v))
    if tag == "sum":
        return sum((_numeric(element, v) for v in values), Decimal(0))
    if tag in ("gte", "lte", "gt", "lt", "equal"):
        left, right = (_numeric(element, v) for v in values)
        return {"gte": left >= right, "lte": left <= right, "gt": left > right,
                "lt": left < right, "equal": left == right}[tag]
    raise NotEvaluable(element, f"expression <{tag}>")


def _numeric(element: Element, value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    raise NotEvaluable(element, "a number was expected")


def _bad(element: Element) -> Any:
    raise NotEvaluable(element, f"<{element.tag}> with an unexpected number of operands")


def _rules(rules: Iterable[Element], state: _State) -> None:
    for rule in rules:
        if rule.tag == "setOutcomeValue":
            operands = list(rule)
            if len(operands) != 1:
                raise NotEvaluable(rule, "setOutcomeValue without exactly one value")
            expression = operands[0]
            state.outcomes[rule.get("identifier") or ""] = _expression(expression, state)
        elif rule.tag == "responseCondition":
            _condition(rule, state)
        elif rule.tag == "exitResponse":
            raise _Exit
        else:
            raise NotEvaluable(rule, f"rule <{rule.tag}>")


def _condition(condition: Element, state: _State) -> None:
    for branch in condition:
        if branch.tag in ("responseIf", "responseElseIf"):
            test, *rules = list(branch)
            if _expression(test, state) is True:
                _rules(rules, state)
                return
        elif branch.tag == "responseElse":
            _rules(list(branch), state)
            return
        else:
            raise NotEvaluable(branch, f"<{branch.tag}> in a responseCondition")


def run(processing: Element, *, response: Any, correct: Any, mapping: Mapping_ | None,
        outcomes: Mapping[str, Any], name: str = RESPONSE) -> dict[str, Any]:
    """The outcome values after processing ``response`` (None, a choice id or a frozenset);
    ``outcomes`` are the declared outcomes with their default values."""
    state = _State(response, correct, mapping, dict(outcomes), name)
    with contextlib.suppress(_Exit):
        _rules(list(processing), state)
    return state.outcomes


@dataclass(frozen=True)
class Derived:
    mode: str  # "single", "weighted", "exact" or "map_response"
    keys: frozenset[str] = frozenset()
    weights: Mapping[str, Decimal] = field(default_factory=dict)


def derive(processing: Element, *, idents: list[str], multiple: bool, correct: Any,
           mapping: Mapping_ | None, score: str = "SCORE", name: str = RESPONSE,
           outcomes: Mapping[str, Any] | None = None) -> Derived:
    """How the item scores, found by running ``processing`` for every possible response;
    NotEvaluable (the whole tree) when the scorer cannot give the same scores. ``outcomes``:
    the item's declared outcomes and their defaults (MAXSCORE, ...)."""
    outcomes = {**(outcomes or {}), score: (outcomes or {}).get(score) or Decimal(0)}
    if multiple:
        if len(idents) > MAX_CHOICES:
            raise NotEvaluable(processing, f"more than {MAX_CHOICES} choices")
        responses: list[Any] = [frozenset(c) for size in range(len(idents) + 1)
                                for c in combinations(idents, size)]
    else:
        responses = [None, *idents]
    scores: dict[Any, Decimal] = {}
    for response in responses:
        value = run(processing, response=response, correct=correct, mapping=mapping,
                    outcomes=outcomes, name=name).get(score)
        scores[response] = _numeric(processing, value)
    if mapping is not None and all(mapping.apply(r) == s for r, s in scores.items()):
        return Derived("map_response")  # the standard tree, written out
    blank: Any = frozenset() if multiple else None
    if scores[blank] != 0:
        raise NotEvaluable(processing, "a blank response scores more or less than 0")
    positive = [r for r, s in scores.items() if s > 0]
    if any(s < 0 for s in scores.values()):
        raise NotEvaluable(processing, "a response scores below 0")
    if not positive:
        raise NotEvaluable(processing, "no response scores more than 0")
    if not multiple:
        if len(positive) == 1:
            return Derived("single", keys=frozenset(positive))
        return Derived("weighted", weights={i: scores[i] for i in idents})
    if len(positive) == 1:
        return Derived("exact", keys=positive[0])
    raise NotEvaluable(processing, "partial credit that is not the item's mapping")
