"""Landing pages after login: the admin dashboard (spans every domain, so it lives here rather
than in one of them), the proctor's list of sessions, and the audit log viewer."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint
from app.audit_text import audit_lines, verify_problem
from app.auth.deps import AdminUser, ClockDep, StaffUser
from app.auth.models import Role, User
from app.bank.models import ItemBank
from app.db import BigRowIdQuery, DbSession
from app.sessions.models import Participant, TestSession
from app.sessions.service import session_rows
from app.web import render, request_language

router = APIRouter()

AUDIT_PAGE_SIZE = 50


@router.get("/admin", include_in_schema=False)
def admin_dashboard(request: Request, db: DbSession, _user: AdminUser,
                    clock: ClockDep) -> Response:
    counts = {
        "banks": db.scalar(select(func.count()).select_from(ItemBank)),
        "blueprints": db.scalar(select(func.count()).select_from(Blueprint)),
        "sessions": db.scalar(select(func.count()).select_from(TestSession)),
        "participants": db.scalar(select(func.count()).select_from(Participant)),
        "users": db.scalar(select(func.count()).select_from(User)),
    }
    recent = db.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc()).limit(8))
    return render(request, "admin/dashboard.html", counts=counts, sessions=session_rows(db),
                  lines=audit_lines(db, recent, lang=request_language(request)),
                  system_alerts=_system_alerts(request, db, clock.now()))


def _system_alerts(request: Request, db: Session, now: datetime) -> list:
    """Every alert line of the server, for every session (app/ops/alerts.py)."""
    from app.ops.alerts import system_alerts

    state = request.app.state
    return system_alerts(db, settings=state.settings, now=now, secret=state.secret)


@router.get("/admin/peringatan", include_in_schema=False)
def admin_alerts(request: Request, db: DbSession, _user: AdminUser, clock: ClockDep) -> Response:
    """The dashboard's system alert lines alone, polled every 15 s."""
    return render(request, "ops/_alerts.html",
                  system_alerts=_system_alerts(request, db, clock.now()))


@router.get("/proctor", include_in_schema=False)
def proctor_home(request: Request, db: DbSession, user: StaffUser) -> Response:
    rows = session_rows(db, proctor=None if user.role == Role.admin else user)
    return render(request, "proctor/home.html", sessions=rows)


@router.get("/admin/audit", include_in_schema=False)
def audit_page(request: Request, db: DbSession, _user: AdminUser, before: BigRowIdQuery = None,
               check: bool = False) -> Response:
    query = select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc()).limit(AUDIT_PAGE_SIZE)
    if before:
        query = query.where(audit.AuditEvent.id < before)
    events = list(db.scalars(query))
    result = audit.verify(db) if check else None
    older = events[-1].id if len(events) == AUDIT_PAGE_SIZE else None
    lang = request_language(request)
    problem = verify_problem(lang, result.problem) if result and not result.ok else ""
    return render(request, "admin/audit.html", fragment="admin/_audit_rows.html",
                  lines=audit_lines(db, events, lang=lang), verify_result=result,
                  verify_problem=problem, older=older)
