"""Item calibration from the field: the responses a bank version collected (one session or all)
go to the pure estimation of :mod:`app.analysis.calibration`, and an admin may adopt the
estimates into a new version of the bank (audited), which blueprints can then draw from.

Only single-answer items are calibrated (right = full points, anything else, blank included,
wrong): the IRT scoring (app/scoring/irt.py) reads only those. Other kinds are listed as not
dichotomous. Attempts that are "tidak dapat dinilai" are left out, as in the item analysis.
The new version is the old one with ``irt: {a, b}`` replaced on every calibrated item (no c:
the models have none); items not calibrated keep what they had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app import audit
from app.analysis.calibration import MIN_RESPONSES, MODELS, Calibration, calibrate
from app.analysis.service import collect
from app.bank.export import export_version_zip
from app.bank.models import BankVersion, ItemKind
from app.bank.reading import ImportOptions, read_bank
from app.bank.service import ImportOutcome, store_bank
from app.exports import NumberText, csv_bytes
from app.sessions.models import TestSession

PLACES = 4  # decimals of the adopted a and b: far below their standard errors


class CalibrationRefused(ValueError):
    """Why nothing is calibrated or adopted: a message key of frontend/locales and its
    values (the page and the CLI word it in the admin's language)."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


@dataclass(frozen=True)
class VersionCalibration:
    bank_version_id: int
    bank_code: str
    bank_title: str
    version: int
    session_code: str | None
    min_responses: int
    calibration: Calibration
    not_dichotomous: list[str] = field(default_factory=list)  # item codes of other kinds
    # The parameters the version holds now, per calibrated item: (a, b, c) or None.
    current: dict[str, tuple[float | None, float | None, float | None]] = field(
        default_factory=dict)
    not_scoreable: int = 0

    @property
    def misfit(self) -> list[str]:
        return [item.code for item in self.calibration.items if item.misfit]


def _right(score: float | None, maximum: float) -> float | None:
    """1 for the full points, 0 for anything less, None for an item not on the form."""
    return None if score is None else float(score >= maximum)


def calibrate_version(db: Session, *, bank_version_id: int, session: TestSession | None = None,
                      model: str = "2PL", min_responses: int = MIN_RESPONSES
                      ) -> VersionCalibration | None:
    """Estimate the version's single-answer items from the trusted finished attempts (of one
    session when given). None when the version does not exist."""
    model = model.upper()
    if model not in MODELS:
        raise CalibrationRefused("calibration.refused_model", model=model,
                                 models=" / ".join(MODELS))
    data = collect(db, bank_version_id, session)
    if data is None:
        return None
    columns = [j for j, spec in enumerate(data.specs) if spec.kind == ItemKind.single.value
               and spec.max_score > 0]
    codes = [data.specs[j].code for j in columns]
    matrix = [[_right(row[j], data.specs[j].max_score) for j in columns] for row in data.scores]
    estimated = calibrate(codes, matrix, model=model, min_responses=min_responses)
    by_code = {item.code: item for item in data.items}
    return VersionCalibration(
        bank_version_id=data.version.id, bank_code=data.bank.code, bank_title=data.bank.title,
        version=data.version.version, session_code=session.code if session else None,
        min_responses=min_responses, calibration=estimated,
        not_dichotomous=[s.code for j, s in enumerate(data.specs) if j not in set(columns)],
        current={e.code: (by_code[e.code].irt_a, by_code[e.code].irt_b, by_code[e.code].irt_c)
                 for e in estimated.items},
        not_scoreable=data.not_scoreable)


def adopt_calibration(db: Session, *, bank_version_id: int, session: TestSession | None = None,
                      model: str = "2PL", min_responses: int = MIN_RESPONSES, reason: str,
                      actor: str, actor_id: int | None, now: datetime
                      ) -> tuple[VersionCalibration, ImportOutcome]:
    """Estimate again (the same data gives the same numbers) and store the version with the
    estimates as a new version of its bank; audited with what was adopted and why."""
    if not reason.strip():
        raise CalibrationRefused("calibration.refused_reason")
    done = calibrate_version(db, bank_version_id=bank_version_id, session=session, model=model,
                             min_responses=min_responses)
    if done is None:
        raise CalibrationRefused("calibration.refused_version", id=bank_version_id)
    if not done.calibration.items:
        raise CalibrationRefused("calibration.refused_nothing",
                                 too_few=len(done.calibration.too_few), min=min_responses,
                                 no_variance=len(done.calibration.no_variance))
    version = db.get_one(BankVersion, bank_version_id)
    source = f"kalibrasi-{done.bank_code}-v{done.version}.zip"
    parsed = read_bank({source: export_version_zip(db, version)}, source=source,
                       options=ImportOptions())
    estimates = {e.code: e for e in done.calibration.items}
    parsed.items = [replace(item, irt={"a": round(estimates[item.code].a, PLACES),
                                       "b": round(estimates[item.code].b, PLACES)})
                    if item.code in estimates else item for item in parsed.items]
    outcome = store_bank(db, parsed, source=source, actor=actor, actor_id=actor_id, now=now)
    result = done.calibration
    audit.record(db, actor=actor, action="bank.calibration_adopt",
                 target=f"bank:{done.bank_code}/v{done.version}", now=now, data={
                     "new_version": outcome.version, "created": outcome.created,
                     "model": result.model, "persons": result.persons,
                     "session": done.session_code, "min_responses": min_responses,
                     "calibrated": len(result.items), "too_few": len(result.too_few),
                     "no_variance": len(result.no_variance), "misfit": done.misfit,
                     "log_likelihood": round(result.log_likelihood, 3)
                     if math.isfinite(result.log_likelihood) else None,
                     "reason": reason.strip()})
    return done, outcome


CSV_HEADER = ["item_code", "status", "n", "p", "a", "b", "se_a", "se_b", "rmsd", "misfit",
              "current_a", "current_b", "current_c"]


def _num(value: float | None) -> NumberText | str:
    return "" if value is None else NumberText(f"{value:.4f}")


def to_csv(done: VersionCalibration) -> bytes:
    """One row per single-answer item: the estimates beside what the version holds now, then
    the items listed and not calibrated (with their number of responses)."""
    result = done.calibration
    rows: list[list[object]] = []
    for item in result.items:
        a, b, c = done.current.get(item.code, (None, None, None))
        rows.append([item.code, "calibrated", item.n, _num(item.p), _num(item.a), _num(item.b),
                     _num(item.se_a), _num(item.se_b), _num(item.rmsd),
                     "yes" if item.misfit else "no", _num(a), _num(b), _num(c)])
    for status, listed in (("too_few", result.too_few), ("no_variance", result.no_variance)):
        rows.extend([code, status, n] + [""] * 10 for code, n in listed)
    return csv_bytes(CSV_HEADER, rows)
