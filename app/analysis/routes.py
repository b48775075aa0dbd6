"""Admin pages of the item analysis: the table of one bank version (optionally one session),
sortable by a query parameter so it works without JavaScript, and the same table as CSV."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analysis import service
from app.analysis.stats import SORTS, TOO_EASY, TOO_HARD, sort_items
from app.auth.deps import AdminUser
from app.db import DbSession, RowId
from app.sessions.service import session_by_code
from app.web import render

router = APIRouter(prefix="/admin/analysis")


def _load(db: Session, bank_version_id: int, session_code: str) -> service.VersionAnalysis:
    session = None
    if session_code.strip():
        session = session_by_code(db, session_code)
        if session is None:
            raise HTTPException(status_code=404)
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
