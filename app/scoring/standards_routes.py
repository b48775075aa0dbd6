"""The admin page for job standards: the (job, competency) -> required level table, editing
one level, loading the defaults, and importing a CSV (refused whole, with every bad row
located). Every change is audited; results change only when a session is rescored."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.bank.parsed import ImportFailed, Problem
from app.db import DbSession, WriteDb
from app.reports.service import competency_name
from app.scoring.imports import export_standards, import_standards, parse_standards
from app.scoring.models import JobStandard
from app.scoring.standards import (
    BASE_LEVELS,
    COMPETENCIES,
    default_standards,
    load_defaults,
    set_required_level,
)
from app.web import render, request_language, translate

router = APIRouter(prefix="/admin/standards")
MAX_CSV_BYTES = 2 * 1024 * 1024



def _page(request: Request, db: Session, *, status_code: int = 200, notice: str = "",
          error: str = "", problems: list[Problem] | None = None, job: str = "",
          competency: str = "", level: str = "") -> Response:
    lang = request_language(request)
    stored = {(s.job_key, s.competency): s.required_level
              for s in db.scalars(select(JobStandard))}
    defaults = default_standards()
    jobs = list(BASE_LEVELS) + sorted({j for j, _ in stored} - set(BASE_LEVELS))
    cells = {}
    for key in jobs:
        for comp in COMPETENCIES:
            if (key, comp) in stored:
                cells[(key, comp)] = (stored[(key, comp)], False)
            elif (key, comp) in defaults:
                cells[(key, comp)] = (defaults[(key, comp)], True)
    if job and competency and not level and (job, competency) in cells:
        level = str(cells[(job, competency)][0])
    return render(request, "reports/standards.html", status_code=status_code, jobs=jobs,
                  competencies=[(c, competency_name(c, lang)) for c in COMPETENCIES],
                  cells=cells, stored=len(stored), notice=notice, error=error,
                  problems=problems or [], form={"job": job, "competency": competency,
                                                 "level": level})


@router.get("", include_in_schema=False)
def standards_page(request: Request, db: DbSession, _user: AdminUser, job: str = "",
                   competency: str = "") -> Response:
    return _page(request, db, job=job[:64], competency=competency[:100])


@router.get("/standar.csv", include_in_schema=False)
def standards_csv(db: WriteDb, clock: ClockDep, user: AdminUser) -> Response:
    """The table as the CSV the import reads (audited, like every export)."""
    data, _ = export_standards(db, actor=_actor(user), now=clock.now())
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="standar.csv"'})


@router.post("/level", include_in_schema=False)
async def standards_edit(
    request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
    job_key: Annotated[str, Form(max_length=64)],
    competency: Annotated[str, Form(max_length=100)],
    level: Annotated[str, Form(max_length=4)],
) -> Response:
    lang = request_language(request)
    form: dict[str, Any] = {"job": job_key, "competency": competency, "level": level}
    if (job_key not in BASE_LEVELS or competency not in COMPETENCIES
            or not level.strip().isdigit() or not 1 <= int(level) <= 5):
        return _page(request, db, status_code=422, error=translate(lang, "standards.invalid"),
                     **form)
    change = set_required_level(db, job_key=job_key, competency=competency, level=int(level),
                                actor=_actor(user), now=clock.now())
    words = {"job": job_key, "competency": competency_name(competency, lang),
             "old": change.old, "new": change.new}
    if not change.changed:
        return _page(request, db, notice=translate(lang, "standards.unchanged", **words), **form)
    return _page(request, db, notice=translate(lang, "standards.saved", **words) + " "
                 + translate(lang, "standards.rescore_hint"), **form)


@router.post("/defaults", include_in_schema=False)
async def standards_defaults(request: Request, db: DbSession, clock: ClockDep,
                             user: AdminUser) -> Response:
    added = load_defaults(db, actor=_actor(user), now=clock.now())
    return _page(request, db, notice=translate(request_language(request),
                                               "standards.defaults_done", added=added))


@router.post("/import", include_in_schema=False)
def standards_import(
    request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
    file: Annotated[UploadFile, File()],
) -> Response:
    lang = request_language(request)
    name = (file.filename or "standar.csv").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_CSV_BYTES + 1)  # a plain def: read, parse and store off the loop
    if len(data) > MAX_CSV_BYTES:
        return _page(request, db, status_code=422, problems=[
            Problem(name, "", "", translate(lang, "talent.file_too_large"))])
    try:
        rows = parse_standards(data, source=name)
        counts = import_standards(db, rows=rows, source=name, actor=_actor(user),
                                  now=clock.now())
    except ImportFailed as exc:
        return _page(request, db, status_code=422, problems=exc.problems)
    return _page(request, db, notice=translate(
        lang, "standards.import_done", added=counts.added, updated=counts.updated,
        unchanged=counts.unchanged) + " " + translate(lang, "standards.rescore_hint"))
