"""Landing pages after login: the admin dashboard (spans every domain, so it lives here rather
than in one of them), the proctor's list of sessions, and the audit log viewer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.assembly.models import Blueprint
from app.auth.deps import AdminUser, ClockDep, StaffUser
from app.auth.models import Role, User
from app.bank.models import ItemBank
from app.db import BigRowIdQuery, DbSession
from app.delivery.models import Participant, ProctorAssignment, RosterEntry, TestSession
from app.web import render

router = APIRouter()

AUDIT_PAGE_SIZE = 50


@dataclass
class SessionRow:
    code: str
    name: str
    room: str
    state: str
    starts_at: datetime
    ends_at: datetime
    participants: int


def session_rows(db: Session, *, proctor: User | None = None) -> list[SessionRow]:
    """Sessions with their roster size; only those assigned to ``proctor`` when given."""
    roster = (
        select(RosterEntry.session_id, func.count().label("n"))
        .group_by(RosterEntry.session_id)
        .subquery()
    )
    query = (
        select(TestSession, func.coalesce(roster.c.n, 0))
        .outerjoin(roster, roster.c.session_id == TestSession.id)
        .order_by(TestSession.starts_at.desc(), TestSession.code)
    )
    if proctor is not None:
        query = query.join(
            ProctorAssignment,
            (ProctorAssignment.session_id == TestSession.id)
            & (ProctorAssignment.user_id == proctor.id),
        )
    return [
        SessionRow(s.code, s.name, s.room, s.state.value, s.starts_at, s.ends_at, n)
        for s, n in db.execute(query)
    ]


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
                  recent=list(recent), system_alerts=_system_alerts(request, db, clock.now()))


def _system_alerts(request: Request, db: Session, now: datetime) -> list:
    """Every alert line of the server, for every session (app/ops/alerts.py)."""
    from app.ops.alerts import system_alerts

    state = request.app.state
    return system_alerts(db, settings=state.settings, now=now, secret=state.secret)


@router.get("/admin/peringatan", include_in_schema=False)
def admin_alerts(request: Request, db: DbSession, _user: AdminUser, clock: ClockDep) -> Response:
    """The dashboard's system alert lines alone, polled every 15 s."""
    return render(request, "ops/_alerts.html", headers={"Cache-Control": "no-store"},
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
    return render(request, "admin/audit.html", fragment="admin/_audit_rows.html", events=events,
                  verify_result=result, older=older)
