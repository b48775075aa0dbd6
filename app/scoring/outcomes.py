"""An attempt's scores on plain data (no database): item scores, the outcome per construct
(raw, maximum, level, EAP theta) and the result's values (levels against the job standard,
gaps, JPM, potensi band, combined JPM, category, nine-box and the detail kept with them), and
how a session's results are read (:class:`ScoringConfig`).

The arithmetic is the engine's (``app.scoring.engine``, ``app.scoring.irt``); this module
puts it together for one attempt. What it reads besides the answers (items, bank versions,
job standards) is a :class:`ScoringData`: ``app.scoring.service`` fills it from the database
on demand and writes the outcome back, ``bench/scoring.py`` fills it by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from app.bank.constructs import KNOWN_CONSTRUCTS
from app.scoring import engine
from app.scoring.engine import ScoredItem
from app.scoring.irt import eap

KOMPETENSI_PREFIX = "kompetensi."

# A bank's kind (the values of app.bank.models.BankKind) and a participant's job group (of
# app.sessions.models.JobGroup), as plain text: this module reads no model.
POTENSI, KOMPETENSI = "potensi", "kompetensi"
FUNGSIONAL = "fungsional"

# (potensi, kompetensi) weights of the combined JPM per job group. docs/domain.md leaves the
# numbers to the agency; these defaults give kompetensi more weight the more managerial the job
# is.
DEFAULT_COMBINED_WEIGHTS: dict[str, tuple[int, int]] = {
    "administrator": (40, 60),
    "pengawas": (40, 60),
    FUNGSIONAL: (50, 50),
    "pelaksana": (50, 50),
}


@dataclass(frozen=True)
class ScoringConfig:
    """How results are read for one session. Every field can be set in the session's
    ``settings["scoring"]``; the defaults are those of docs/domain.md."""

    purpose: str = "mapping"  # "mapping" (Optimal ...) or "placement" (Memenuhi Syarat ...)
    jpm_cap: bool = True
    potensi_bands: tuple[Decimal, Decimal] = (Decimal(60), Decimal(80))
    combined_weights: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: dict(DEFAULT_COMBINED_WEIGHTS))
    category_basis: str = "kompetensi"  # or "combined": categorise the combined JPM
    performance_axis: str = "rating"  # or "jpm": kompetensi category as the performance axis
    performance_period: str = ""  # "" = the participant's latest period

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ScoringConfig:
        """The configuration of a session's ``settings`` (its ``"scoring"`` part); ValueError
        for a value outside the known ones."""
        raw = dict((settings or {}).get("scoring") or {})
        config = cls()
        weights = dict(config.combined_weights)
        for group, pair in (raw.pop("combined_weights", None) or {}).items():
            weights[group] = (int(pair[0]), int(pair[1]))
        bands = raw.pop("potensi_bands", None)
        config = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__},
                     combined_weights=weights,
                     potensi_bands=((Decimal(str(bands[0])), Decimal(str(bands[1]))) if bands
                                    else config.potensi_bands))
        if config.purpose not in engine.CATEGORIES:
            raise ValueError(f"scoring purpose must be one of {sorted(engine.CATEGORIES)}")
        if config.category_basis not in ("kompetensi", "combined"):
            raise ValueError("category_basis must be kompetensi or combined")
        if config.performance_axis not in ("rating", "jpm"):
            raise ValueError("performance_axis must be rating or jpm")
        return config

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["potensi_bands"] = [str(b) for b in self.potensi_bands]
        data["combined_weights"] = {k: list(v) for k, v in sorted(self.combined_weights.items())}
        return data


def job_key(job_group: str, grade: str) -> str:
    """The job standard's key: the job group, or ``fungsional:<grade>``."""
    return f"{FUNGSIONAL}:{grade}" if job_group == FUNGSIONAL else job_group


def competency_of(construct: str) -> str:
    """``kompetensi.integritas`` -> ``integritas`` (the job standards' name)."""
    return construct.removeprefix(KOMPETENSI_PREFIX)


def aspect_of(construct: str) -> str:
    known = KNOWN_CONSTRUCTS.get(construct)
    return known.aspect if known else construct.split(".", 1)[-1]


def plain(value: Decimal | None) -> str | None:
    """A Decimal as JSON text without trailing zeros ("12.5", "40"), the same on every
    backend (PostgreSQL returns Numeric at the column's scale, SQLite does not)."""
    if value is None:
        return None
    return format(value.normalize(), "f")


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemData:
    id: int
    code: str
    construct: str
    bank_version_id: int
    scored: ScoredItem
    labels: dict[int, str]  # option id -> label, for exports
    irt: tuple[float, float, float] | None


@dataclass(frozen=True)
class VersionData:
    id: int
    kind: str  # potensi / kompetensi (the bank's)
    key_revision: int
    rules: dict[str, Any]


@dataclass(frozen=True)
class Rating:
    """A participant's kinerja rating of one period (below / as_expected / above)."""

    period: str
    rating: str


class ScoringData:
    """What scoring reads besides the answers: items, bank versions and job standards, kept in
    memory for many attempts (a session's attempts share their items). The items of a form
    must be in ``items`` before it is scored; standards not given count as none."""

    def __init__(self, *, items: Mapping[int, ItemData] | None = None,
                 versions: Mapping[int, VersionData] | None = None,
                 standards: Mapping[tuple[str, str], int] | None = None,
                 table_keys: set[tuple[str, str]] | None = None) -> None:
        self.items: dict[int, ItemData] = dict(items or {})
        self.versions: dict[int, VersionData] = dict(versions or {})
        self._standards = dict(standards) if standards is not None else None
        self._table_keys = set(table_keys) if table_keys is not None else None
        self._max: dict[int, Decimal] = {}

    def item_max(self, data: ItemData) -> Decimal:
        """The item's highest score, once per item (it is the same for every attempt)."""
        value = self._max.get(data.id)
        if value is None:
            value = self._max[data.id] = engine.item_max(
                data.scored, self.versions[data.bank_version_id].rules)
        return value

    def standards(self) -> dict[tuple[str, str], int]:
        """(job_key, competency) -> required level."""
        return self._standards or {}

    def table_keys(self) -> set[tuple[str, str]]:
        """The (job_key, competency) pairs an admin has in the table (not defaults)."""
        return self._table_keys or set()


# -- the computation ----------------------------------------------------------------------------


@dataclass
class ConstructOutcome:
    construct: str
    kind: str
    bank_version_id: int
    key_revision: int
    raw: Decimal = engine.ZERO
    max_raw: Decimal = engine.ZERO
    level: int | None = None
    theta: float | None = None
    theta_se: float | None = None
    items: list[tuple[ItemData, Any]] = field(default_factory=list)

    @property
    def percent(self) -> Decimal:
        return engine.percent(self.raw, self.max_raw)


def item_scores(data: ScoringData, form: list[int], answers: Mapping[int, Any]
                ) -> list[tuple[int, Decimal]]:
    """(item id, score) for each item of a form, with the current keys."""
    out = []
    for item_id in form:
        item = data.items[item_id]
        rules = data.versions[item.bank_version_id].rules
        out.append((item_id, engine.item_score(item.scored, answers.get(item_id), rules)))
    return out


def construct_outcomes(data: ScoringData, form: list[int], answers: Mapping[int, Any]
                       ) -> list[ConstructOutcome]:
    """The outcome of each construct of a form, in the order of their names."""
    by_construct: dict[str, ConstructOutcome] = {}
    for item_id in form:
        item = data.items[item_id]
        version = data.versions[item.bank_version_id]
        outcome = by_construct.get(item.construct)
        if outcome is None:
            # A construct drawn from two bank versions is stamped with the first (lowest id);
            # both revisions are in the result's detail.
            outcome = by_construct[item.construct] = ConstructOutcome(
                item.construct, version.kind, version.id, version.key_revision)
        elif version.id < outcome.bank_version_id:
            outcome.bank_version_id, outcome.key_revision = version.id, version.key_revision
        response = answers.get(item_id)
        outcome.raw += engine.item_score(item.scored, response, version.rules)
        outcome.max_raw += data.item_max(item)
        outcome.items.append((item, response))
    for outcome in by_construct.values():
        rule = data.versions[outcome.bank_version_id].rules.get("levels", {}).get(
            outcome.construct)
        outcome.level = engine.level_for(outcome.raw, rule, outcome.max_raw)
        if (outcome.kind == POTENSI
                and all(d.irt is not None and d.scored.kind == "single"
                        for d, _ in outcome.items)):
            # A blank counts as wrong, as it does for the raw score (national CAT convention).
            responses = [int(any(o.is_key and o.id == r for o in d.scored.options))
                         for d, r in outcome.items]
            theta, se = eap(responses, [d.irt for d, _ in outcome.items if d.irt is not None])
            outcome.theta, outcome.theta_se = float(theta), float(se)
    return [by_construct[c] for c in sorted(by_construct)]


@dataclass
class ResultValues:
    total_score: Decimal
    jpm: Decimal | None
    category: str
    potensi_band: str
    nine_box: int | None
    key_revision: int
    detail: dict[str, Any]


def result_values(data: ScoringData, config: ScoringConfig, *, job_group: str, grade: str,
                  outcomes: list[ConstructOutcome], rating: Rating | None) -> ResultValues:
    """The result of an attempt's construct outcomes for a participant of this job group
    and grade, with their kinerja ``rating`` (None: no rating)."""
    key = job_key(job_group, grade)
    standards = data.standards()
    kompetensi = [o for o in outcomes if o.kind == KOMPETENSI]
    potensi = [o for o in outcomes if o.kind == POTENSI]
    # Levels achieved, over the competencies this test measured and could level: a session
    # that measures 3 competencies is matched against those 3, not against all 9.
    achieved = {competency_of(o.construct): o.level for o in kompetensi if o.level is not None}
    required = {c: standards[(key, c)] for c in sorted(achieved) if (key, c) in standards}
    gap = engine.gaps(achieved, required)
    strengths, development = engine.strengths_and_development(gap)
    jpm_exact = engine.jpm_exact(achieved, required, cap=config.jpm_cap) if required else None
    jpm_value = engine.round2(jpm_exact) if jpm_exact is not None else None

    aspects: dict[str, tuple[Decimal, Decimal]] = {}
    for o in potensi:
        raw, maximum = aspects.get(aspect_of(o.construct), (engine.ZERO, engine.ZERO))
        aspects[aspect_of(o.construct)] = (raw + o.raw, maximum + o.max_raw)
    potensi_exact = engine.mean_percent_exact([aspects[a] for a in sorted(aspects)])
    potensi_score = engine.round2(potensi_exact) if potensi_exact is not None else None
    band = (engine.potensi_band(potensi_score, config.potensi_bands)
            if potensi_score is not None else "")

    weights = config.combined_weights.get(job_group, DEFAULT_COMBINED_WEIGHTS[job_group])
    # The combined JPM from the unrounded potensi score and JPM, rounded once; a category (and
    # a potensi band) is read from the two-decimal value that is stored and shown, so anyone
    # can check it against the boundaries on the report (docs/psychometrics.md).
    combined = (engine.combined_jpm(potensi_exact, jpm_exact, weights)
                if potensi_exact is not None and jpm_exact is not None else None)
    basis = combined if config.category_basis == "combined" else jpm_value
    label = engine.category(basis, config.purpose) if basis is not None else ""

    performance = None
    if config.performance_axis == "jpm":
        performance = engine.performance_from_category(label, config.purpose) if label else None
    elif rating is not None:
        performance = rating.rating
    box = (engine.nine_box(performance, engine.POTENTIAL_OF_BAND[band])
           if performance and band else None)

    revisions = {str(v): data.versions[v].key_revision
                 for v in sorted({d.bank_version_id for o in outcomes for d, _ in o.items})}
    table = data.table_keys() if required else set()
    detail = {
        "job_key": key,
        "required": required,
        "achieved": achieved,
        "gaps": gap,
        "standard_source": {c: "table" if (key, c) in table else "default" for c in required},
        "no_standard": sorted(c for c in achieved if c not in required),
        "strengths": strengths,
        "development_areas": development,
        "potensi_score": plain(potensi_score),
        "aspects": {a: plain(engine.percent(*aspects[a])) for a in sorted(aspects)},
        "combined_jpm": plain(combined),
        "combined_weights": {"potensi": weights[0], "kompetensi": weights[1]},
        "performance": ({"period": rating.period, "rating": rating.rating}
                        if rating is not None and config.performance_axis == "rating"
                        else ({"axis": "jpm", "rating": performance} if performance else None)),
        "items": sum(len(o.items) for o in outcomes),
        "answered": sum(1 for o in outcomes for _, r in o.items if r not in (None, [])),
        "key_revisions": revisions,
        "config": config.as_json(),
    }
    return ResultValues(
        total_score=sum((o.raw for o in outcomes), engine.ZERO),
        jpm=jpm_value, category=label, potensi_band=band, nine_box=box,
        # Revisions only grow, so their sum changes whenever any version's key changed.
        key_revision=sum(revisions.values()),
        detail=detail)
