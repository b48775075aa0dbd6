"""Can this attempt's scores be trusted? Indicators of one attempt, on plain data (no
database), and the rule that withholds the judgements made from its levels.

An attempt is **tidak dapat dinilai** (not scoreable) when it answered too little of a section
or when too many of its answers came faster than anyone can read the question (rapid
guessing), or when a long run of answers picked the same place in the list (straight-lining),
or when the taker did not hand it in: a proctor force-submitted it (the reason the proctor
typed is kept) or it was still running when the session was closed.
Its item and construct scores are kept for the record, but it gets no JPM, no combined JPM, no
category, no potensi band and no nine-box box: a judgement of a person who did not really take
the test would go straight into a promotion decision. ``docs/psychometrics.md`` ("Validity of an
attempt") gives each rule with its source and a worked example.

Indicators:

- **answered per section**: items with an answer / items administered in that section;
  below ``min_answered_share`` (default 0.5) in any section -> not scoreable.
- **response time** of an answered item: the server time of its first accepted save minus
  the server time of the save before it in the same attempt (any item), or minus the start of
  the item's section for the first save of a section. A save made after a pause counts the
  pause too, which can only make it slower.
- **rapid guess**: an answered item whose response time is below ``rapid_threshold_s``
  (default 3 s: the common threshold of Kong, Wise & Bhola, 2007, which separated rapid
  guesses from solution behaviour about as well as item-specific thresholds).
- **response-time effort (RTE)** (Wise & Kong, 2005): the share of answered items that are
  not rapid guesses; below ``min_rte`` (default 0.90) -> not scoreable.
- **longest same-place run**: the longest run of consecutive answered single-choice items
  (in the taker's order, within a section) whose chosen option is at the same place of the
  list as shown to this taker; ``straight_run`` (default 10) or longer -> not scoreable.
  Options are shuffled per taker, so the key is not at one place.
- **time used**: seconds from the start to the hand-in, pauses not counted (shown, no rule).
- **interrupted**: how the attempt was handed in (``attempts.submit_reason``): ``forced`` (a
  proctor's force submit) -> reason ``forced`` with the proctor's text in ``note``;
  ``session_closed`` (still running when the session was closed) -> reason
  ``closed_unfinished``. Both only while ``withhold_interrupted`` is on (the default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.scoring.outcomes import ResultValues


@dataclass(frozen=True)
class ValidityRules:
    """Thresholds, per session in ``settings["validity"]``; the defaults are documented above."""

    min_answered_share: Decimal = Decimal("0.5")
    rapid_threshold_s: Decimal = Decimal(3)
    min_rte: Decimal = Decimal("0.90")
    straight_run: int = 10
    withhold_interrupted: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ValidityRules:
        """The rules of a session's ``settings`` (its ``"validity"`` part); ValueError for a
        value out of range."""
        raw = dict((settings or {}).get("validity") or {})
        rules = cls(
            min_answered_share=Decimal(str(raw.get("min_answered_share",
                                                   cls.min_answered_share))),
            rapid_threshold_s=Decimal(str(raw.get("rapid_threshold_s", cls.rapid_threshold_s))),
            min_rte=Decimal(str(raw.get("min_rte", cls.min_rte))),
            straight_run=int(raw.get("straight_run", cls.straight_run)),
            withhold_interrupted=raw.get("withhold_interrupted", cls.withhold_interrupted))
        if not isinstance(rules.withhold_interrupted, bool):
            raise ValueError("withhold_interrupted is true or false")
        if not (0 <= rules.min_answered_share <= 1 and 0 <= rules.min_rte <= 1):
            raise ValueError("min_answered_share and min_rte are shares between 0 and 1")
        if rules.rapid_threshold_s < 0 or rules.straight_run < 2:
            raise ValueError("rapid_threshold_s must be >= 0 and straight_run >= 2")
        return rules

    def as_json(self) -> dict[str, Any]:
        return {"min_answered_share": str(self.min_answered_share),
                "rapid_threshold_s": str(self.rapid_threshold_s), "min_rte": str(self.min_rte),
                "straight_run": self.straight_run,
                "withhold_interrupted": self.withhold_interrupted}


@dataclass(frozen=True)
class FormItem:
    """One item of the attempt's form, in the taker's order."""

    item_id: int
    section: int
    answered: bool
    shown_place: int | None = None  # the chosen option's place as shown (single choice only)


@dataclass(frozen=True)
class Save:
    """An accepted save of the attempt (the answer event log), in the order of its seq."""

    item_id: int
    at: datetime


def response_times(saves: Sequence[Save], section_of: Mapping[int, int],
                   section_starts: Mapping[int, datetime]) -> dict[int, Decimal]:
    """item -> seconds from the save before its first save (or its section's start) to its
    first save. Items never saved have no time."""
    times: dict[int, Decimal] = {}
    previous: dict[int, datetime] = {}  # per section: the last save seen
    for save in saves:
        section = section_of.get(save.item_id)
        if section is None:
            continue
        since = previous.get(section, section_starts.get(section))
        if save.item_id not in times and since is not None:
            seconds = (save.at - since).total_seconds()
            times[save.item_id] = Decimal(str(round(max(seconds, 0.0), 3)))
        previous[section] = save.at
    return times


def _longest_run(places: Sequence[int | None]) -> int:
    longest = run = 0
    last: int | None = None
    for place in places:
        if place is not None and place == last:
            run += 1
        else:
            run = 1 if place is not None else 0
        last = place
        longest = max(longest, run)
    return longest


def _share(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")) if whole else Decimal(1)


# How an attempt was handed in (attempts.submit_reason) -> the reason it is not scoreable.
INTERRUPTED = {"forced": "forced", "session_closed": "closed_unfinished"}


def indicators(form: Sequence[FormItem], times: Mapping[int, Decimal], rules: ValidityRules,
               *, time_used_s: int | None, submit_reason: str = "",
               forced_note: str = "") -> dict[str, Any]:
    """The attempt's indicators and, when it is not scoreable, every reason (JSON-ready).
    ``submit_reason`` is how it was handed in; ``forced_note`` the reason a proctor gave for a
    force submit, when one was recorded."""
    sections: dict[int, list[FormItem]] = {}
    for item in form:
        sections.setdefault(item.section, []).append(item)
    per_section = []
    reasons: list[dict[str, Any]] = []
    longest = 0
    for number, items in sorted(sections.items()):
        answered = sum(1 for i in items if i.answered)
        share = _share(answered, len(items))
        per_section.append({"section": number + 1, "answered": answered,
                            "administered": len(items), "share": str(share)})
        if share < rules.min_answered_share:
            reasons.append({"rule": "few_answered", "section": number + 1,
                            "answered": answered, "administered": len(items)})
        longest = max(longest, _longest_run([i.shown_place if i.answered else None
                                             for i in items]))
    timed = [times[i.item_id] for i in form if i.answered and i.item_id in times]
    rapid = sum(1 for t in timed if t < rules.rapid_threshold_s)
    rte = _share(len(timed) - rapid, len(timed))
    if timed and rte < rules.min_rte:
        reasons.append({"rule": "rapid_guessing", "rapid": rapid, "timed": len(timed),
                        "rte": str(rte)})
    if longest >= rules.straight_run:
        reasons.append({"rule": "straight_lining", "run": longest})
    rule = INTERRUPTED.get(submit_reason)
    if rule is not None and rules.withhold_interrupted:
        reasons.append({"rule": rule, "note": forced_note.strip()} if rule == "forced"
                       and forced_note.strip() else {"rule": rule})
    answered_all = sum(1 for i in form if i.answered)
    return {
        "scoreable": not reasons,
        "reasons": reasons,
        "answered": answered_all,
        "administered": len(form),
        "sections": per_section,
        "rapid": rapid,
        "timed": len(timed),
        "rte": str(rte),
        "longest_same_place_run": longest,
        "time_used_s": time_used_s,
        "submit_reason": submit_reason,
        "rules": rules.as_json(),
    }


def withheld(validity: Mapping[str, Any] | None) -> bool:
    """Whether a result with these indicators (``results.detail["validity"]``) is withheld: not
    scoreable, and not accepted by an admin (a retake scheduled instead, ``validity["retake"]``,
    keeps it withheld: the retake's own result counts). Results scored before the indicators
    existed have none and are not withheld."""
    if not validity:
        return False
    return not validity.get("scoreable", True) and not validity.get("accepted")


def withhold(values: ResultValues, validity: Mapping[str, Any]) -> ResultValues:
    """The result of an attempt with these indicators: unchanged when it is scoreable or an
    admin accepted it (``validity["accepted"]``); else the same scores without the judgements
    made from them (JPM, combined JPM, category, potensi band, nine-box). The indicators are
    kept in ``detail["validity"]`` either way."""
    detail = {**values.detail, "validity": dict(validity)}
    if not withheld(validity):
        return dataclasses.replace(values, detail=detail)
    detail["combined_jpm"] = None
    return dataclasses.replace(values, jpm=None, category="", potensi_band="", nine_box=None,
                               detail=detail)
