"""Admin pages of the item analysis: the table of one bank version (optionally one session),
sortable by a query parameter so it works without JavaScript, and the same table as CSV; the
IRT calibration of its items from the same answers, its CSV, and adopting it into a new bank
version."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import field_calibration, service
from app.analysis.calibration import MIN_RESPONSES, MODELS, RMSD_MISFIT
from app.analysis.stats import SORTS, TOO_EASY, TOO_HARD, sort_items
from app.auth.deps import AdminUser, ClockDep
from app.db import DbSession, RowId
from app.sessions.models import TestSession
from app.sessions.service import session_by_code
from app.web import redirect, render, request_language, translate

router = APIRouter(prefix="/admin/analysis")


def _session(db: Session, session_code: str) -> TestSession | None:
    if not session_code.strip():
        return None
    session = session_by_code(db, session_code)
    if session is None:
        raise HTTPException(status_code=404)
    return session


def _load(db: Session, bank_version_id: int, session_code: str) -> service.VersionAnalysis:
    session = _session(db, session_code)
    result = service.item_analysis(db, session=session, bank_version_id=bank_version_id)
    if result is None:
        raise HTTPException(status_code=404)
    return result


# Declared before the page: "/admin/analysis/7.csv" would otherwise match the page's path
# parameter and fail as a non-integer id.
@router.get("/{bank_version_id}.csv", include_in_schema=False)
def analysis_csv(bank_version_id: RowId, db: DbSession, _user: AdminUser, session: str = "",
                 sort: str = "code") -> Response:
    result = _load(db, bank_version_id, session)
    items = sort_items(result.analysis.items, sort if sort in SORTS else "code")
    suffix = f"-{result.session_code}" if result.session_code else ""
    name = f"analisis-{result.bank_code}-v{result.version}{suffix}.csv"
    return Response(service.to_csv(result, items), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{bank_version_id}", include_in_schema=False)
def analysis_page(request: Request, bank_version_id: RowId, db: DbSession, _user: AdminUser,
                  session: str = "", sort: str = "code") -> Response:
    result = _load(db, bank_version_id, session)
    sort = sort if sort in SORTS else "code"
    return render(request, "analysis/version.html", result=result,
                  items=sort_items(result.analysis.items, sort), sort=sort,
                  session_code=result.session_code or "",
                  session_query=(f"session={quote(result.session_code)}&"
                                 if result.session_code else ""),
                  thresholds={"easy": TOO_EASY, "hard": TOO_HARD})


def _check(model: str, min_responses: int) -> None:
    if model.upper() not in MODELS or not 2 <= min_responses <= 1_000_000:
        raise HTTPException(status_code=422)


def _calibration(db: Session, bank_version_id: int, session_code: str, model: str,
                 min_responses: int) -> field_calibration.VersionCalibration:
    _check(model, min_responses)
    done = field_calibration.calibrate_version(
        db, bank_version_id=bank_version_id, session=_session(db, session_code), model=model,
        min_responses=min_responses)
    if done is None:
        raise HTTPException(status_code=404)
    return done


def _calibration_page(request: Request, db: Session, done: field_calibration.VersionCalibration,
                      *, status_code: int = 200, error: str = "", adopted: int | None = None,
                      existing: bool = False) -> Response:
    return render(request, "analysis/calibration.html", status_code=status_code, done=done,
                  result=done.calibration, models=MODELS, misfit_at=RMSD_MISFIT,
                  sessions=service.version_sessions(db, done.bank_version_id), error=error,
                  adopted=adopted, existing=existing)


@router.get("/{bank_version_id}/calibration.csv", include_in_schema=False)
def calibration_csv(bank_version_id: RowId, db: DbSession, _user: AdminUser, session: str = "",
                    model: str = "2PL", min_responses: int = MIN_RESPONSES) -> Response:
    done = _calibration(db, bank_version_id, session, model, min_responses)
    suffix = f"-{done.session_code}" if done.session_code else ""
    name = f"kalibrasi-{done.bank_code}-v{done.version}{suffix}-{done.calibration.model}.csv"
    return Response(field_calibration.to_csv(done), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{bank_version_id}/calibration", include_in_schema=False)
def calibration_page(request: Request, bank_version_id: RowId, db: DbSession, _user: AdminUser,
                     session: str = "", model: str = "2PL", min_responses: int = MIN_RESPONSES,
                     adopted: int | None = None, existing: bool = False) -> Response:
    done = _calibration(db, bank_version_id, session, model, min_responses)
    return _calibration_page(request, db, done, adopted=adopted, existing=existing)


@router.post("/{bank_version_id}/calibration", include_in_schema=False)
def calibration_adopt(request: Request, bank_version_id: RowId, db: DbSession, clock: ClockDep,
                      user: AdminUser, reason: Annotated[str, Form(max_length=2000)] = "",
                      session: Annotated[str, Form(max_length=64)] = "",
                      model: Annotated[str, Form(max_length=8)] = "2PL",
                      min_responses: Annotated[int, Form()] = MIN_RESPONSES) -> Response:
    """Adopt the estimates shown into a new version of the bank (audited, with the reason).
    The calibration runs once, inside the adoption; only a refusal runs it again, for the
    page that says why."""
    _check(model, min_responses)
    try:
        done, outcome = field_calibration.adopt_calibration(
            db, bank_version_id=bank_version_id, session=_session(db, session), model=model,
            min_responses=min_responses, reason=reason, actor=f"user:{user.username}",
            actor_id=user.id, now=clock.now())
    except field_calibration.CalibrationRefused as exc:
        shown = _calibration(db, bank_version_id, session, model, min_responses)
        return _calibration_page(request, db, shown, status_code=422, error=translate(
            request_language(request), exc.key, **exc.params))
    query = f"model={done.calibration.model}&min_responses={min_responses}"
    if session:
        query += f"&session={quote(session)}"
    return redirect(request, f"/admin/analysis/{bank_version_id}/calibration?{query}"
                             f"&adopted={outcome.version}"
                             + ("" if outcome.created else "&existing=1"))
