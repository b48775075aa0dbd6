"""Admin pages of key positions and their candidates: the positions with a form to mark one,
one position's required levels (a form), and a programme's candidates for a position (the
ranking, its CSV, audited). See app/programmes/candidates.py and docs/architecture.md."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.db import DbSession, WriteDb
from app.programmes import candidates as service
from app.programmes.models import KeyPosition, Programme
from app.programmes.service import ProgrammeError, programme_by_code
from app.web import redirect, render, request_language, translate

router = APIRouter()


def _programme_or_404(db: Session, code: str) -> Programme:
    programme = programme_by_code(db, code)
    if programme is None:
        raise HTTPException(status_code=404)
    return programme


def _position_or_404(db: Session, key: str) -> KeyPosition:
    position = service.position_by_key(db, key)
    if position is None:
        raise HTTPException(status_code=404)
    return position


def _missing(request: Request, key: str) -> Response:
    """An unknown position's page: back to the list, which says so."""
    return redirect(request, "/admin/positions?" + urlencode({"missing": key[:70]}))


def _positions_page(request: Request, db: Session, *, error: str = "",
                    form: dict | None = None, status_code: int = 200) -> Response:
    return render(request, "programmes/positions.html", status_code=status_code,
                  positions=service.positions(db), job_keys=service.job_keys(db),
                  error=error, form=form or {})


@router.get("/admin/positions", include_in_schema=False)
def positions_page(request: Request, db: DbSession, _user: AdminUser,
                   missing: str = "") -> Response:
    error = (translate(request_language(request), "talent.position_missing",
                       code=missing[:70]) if missing else "")
    return _positions_page(request, db, error=error)


@router.post("/admin/positions", include_in_schema=False)
def position_create(request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
                    key: Annotated[str, Form(max_length=80)] = "",
                    name: Annotated[str, Form(max_length=400)] = "",
                    unit: Annotated[str, Form(max_length=400)] = "",
                    job_key: Annotated[str, Form(max_length=80)] = "") -> Response:
    try:
        made = service.create_position(db, key=key, name=name, unit=unit, job_key=job_key,
                                       actor=_actor(user), now=clock.now())
    except ProgrammeError as exc:
        return _positions_page(request, db, error=exc.text(request_language(request)),
                               status_code=422, form={"key": key, "name": name, "unit": unit,
                                                      "job_key": job_key})
    return redirect(request, f"/admin/positions/{made.key}")


def _position_page(request: Request, db: Session, position: KeyPosition, *, error: str = "",
                   saved: bool = False, values: dict[str, str] | None = None,
                   status_code: int = 200) -> Response:
    levels = values if values is not None else {
        c: str(v) for c, v in (position.required or {}).items()}
    names = service.competencies(db)
    names += sorted(c for c in levels if c not in names)
    return render(request, "programmes/position.html", status_code=status_code,
                  position=position, competencies=names, levels=levels, error=error,
                  saved=saved, standard=service.standard_of(db, position.job_key))


@router.get("/admin/positions/{key}", include_in_schema=False)
def position_page(request: Request, key: str, db: DbSession, _user: AdminUser,
                  saved: int = 0) -> Response:
    position = service.position_by_key(db, key)
    if position is None:
        return _missing(request, key)
    return _position_page(request, db, position, saved=bool(saved))


@router.post("/admin/positions/{key}", include_in_schema=False)
async def position_save(request: Request, key: str, db: DbSession, clock: ClockDep,
                        user: AdminUser) -> Response:
    """The form has one field ``level_<competency>`` per competency; blank: not required."""
    position = service.position_by_key(db, key)
    if position is None:
        return _missing(request, key)
    form = await request.form()
    values = {str(name).removeprefix("level_"): str(value).strip()[:10]
              for name, value in form.items() if str(name).startswith("level_")}
    try:
        required: dict[str, int] = {}
        for competency, text in values.items():
            if not text:
                continue
            if not text.isdigit():
                raise ProgrammeError("position_level", competency=competency[:70], level=text)
            required[competency] = int(text)
        service.set_required(db, position=position, required=required, actor=_actor(user),
                             now=clock.now())
    except ProgrammeError as exc:
        return _position_page(request, db, position, values=values, status_code=422,
                              error=exc.text(request_language(request)))
    return redirect(request, f"/admin/positions/{position.key}?saved=1")


@router.get("/admin/programmes/{code}/candidates.csv", include_in_schema=False)
def candidates_file(code: str, db: WriteDb, clock: ClockDep, user: AdminUser,
                    position: Annotated[str, Query(max_length=80)]) -> Response:
    """A GET that writes (the export is audited); ``position`` is required."""
    programme = _programme_or_404(db, code)
    chosen = _position_or_404(db, position)
    _pool, data = service.export_candidates(db, programme=programme, position=chosen,
                                            actor=_actor(user), now=clock.now())
    return Response(data, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition":
            f'attachment; filename="kandidat-{programme.code}-{chosen.key}.csv"'})


@router.get("/admin/programmes/{code}/candidates", include_in_schema=False)
def candidates_page(request: Request, code: str, db: DbSession, _user: AdminUser,
                    position: str = "") -> Response:
    programme = _programme_or_404(db, code)
    every = service.positions(db)
    chosen = service.position_by_key(db, position) if position.strip() else None
    if position.strip() and chosen is None:
        raise HTTPException(status_code=404)
    pool = (service.candidate_pool(db, programme=programme, position=chosen)
            if chosen is not None else None)
    return render(request, "programmes/candidates.html", programme=programme,
                  positions=every, chosen=chosen, pool=pool)
