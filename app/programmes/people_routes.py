"""Admin pages of people across time: find a person by NIP or name, and one person's history
of tests with the job at each and the trend of their competency levels (app/programmes/people.py,
docs/psychometrics.md "A person's history")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from app.auth.deps import AdminUser
from app.db import DbSession
from app.programmes import people
from app.reports.export import validity_reason
from app.reports.service import competency_name
from app.web import render, request_language

router = APIRouter(prefix="/admin/people")


@router.get("", include_in_schema=False)
def people_page(request: Request, db: DbSession, _user: AdminUser,
                q: Annotated[str, Query(max_length=200)] = "") -> Response:
    found = people.find_people(db, q)
    return render(request, "programmes/people.html", query=q.strip(), found=found,
                  limit=people.FIND_LIMIT)


@router.get("/{nip}", include_in_schema=False)
def person_history_page(request: Request, nip: str, db: DbSession,
                        _user: AdminUser) -> Response:
    history = people.person_history(db, nip)
    if history is None:
        raise HTTPException(status_code=404)
    lang = request_language(request)
    return render(request, "programmes/person_history.html", history=history,
                  competency=lambda code: competency_name(code, lang),
                  reason_text=lambda e: "; ".join(validity_reason(r, lang) for r in e.reasons))
