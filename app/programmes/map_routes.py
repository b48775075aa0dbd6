"""Admin pages of a programme's talent map (see docs/architecture.md): the nine-box of the
whole programme with names per box, filters by unit and job group, the people without a box
and why, the kinerja upload for the programme's people, and the map as XLSX and A4 PDF."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.bank.parsed import ImportFailed, Problem
from app.db import DbSession, WriteDb
from app.programmes import talent_map as service
from app.programmes.models import Programme
from app.programmes.service import programme_by_code
from app.reports.ninebox import ninebox_svg
from app.reports.service import BOXES, box_action, box_placement
from app.web import render, request_language, translate

router = APIRouter(prefix="/admin/programmes")
MAX_CSV_BYTES = 2 * 1024 * 1024
SVG_TEXTS = ("performance", "potential", "below", "as_expected", "above", "low", "medium",
             "high", "box", "people", "more", "title")
MEDIA = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "pdf": "application/pdf"}


def _programme_or_404(db: Session, code: str) -> Programme:
    programme = programme_by_code(db, code)
    if programme is None:
        raise HTTPException(status_code=404)
    return programme


def _map_page(request: Request, db: Session, programme: Programme, *, unit: str = "",
              job_group: str = "", status_code: int = 200,
              problems: list[Problem] | None = None, notice: str = "") -> Response:
    lang = request_language(request)
    tmap = service.talent_map(db, programme, unit=unit, job_group=job_group)
    boxes = tmap.boxes
    actions = {box: box_action(box, lang) for box in BOXES}
    svg = ninebox_svg([(p.name, box) for box, people in boxes.items() for p in people],
                      actions, texts={k: translate(lang, f"talent.svg_{k}") for k in SVG_TEXTS})
    query = urlencode({k: v for k, v in (("unit", tmap.unit), ("job_group", tmap.job_group))
                       if v})
    return render(request, "programmes/talent_map.html", status_code=status_code,
                  programme=programme, tmap=tmap, boxes=boxes, svg=svg, actions=actions,
                  places={box: box_placement(box, lang) for box in BOXES},
                  unplaced=tmap.unplaced, job_groups=service.job_groups(), query=query,
                  grid=service.GRID, problems=problems or [], notice=notice)


@router.get("/{code}/talent-map", include_in_schema=False)
def programme_talent_map(request: Request, code: str, db: DbSession, _user: AdminUser,
                         unit: str = "", job_group: str = "") -> Response:
    return _map_page(request, db, _programme_or_404(db, code), unit=unit[:200],
                     job_group=job_group[:32])


@router.get("/{code}/talent-map.{fmt}", include_in_schema=False)
def programme_talent_map_file(request: Request, code: str, fmt: str, db: WriteDb,
                              clock: ClockDep, user: AdminUser, unit: str = "",
                              job_group: str = "", lang: str = "") -> Response:
    """XLSX or the A4 PDF for the head of the agency; a GET that writes (audited)."""
    if fmt not in service.FORMATS:
        raise HTTPException(status_code=404)
    programme = _programme_or_404(db, code)
    lang = lang if lang in ("id", "en") else request_language(request)
    data = service.export_map(db, programme=programme, fmt=fmt, actor=_actor(user),
                              now=clock.now(), unit=unit[:200], job_group=job_group[:32],
                              lang=lang, zone=request.app.state.settings.timezone)
    return Response(data, media_type=MEDIA[fmt], headers={
        "Content-Disposition":
            f'attachment; filename="peta-talenta-{programme.code}.{fmt}"'})


@router.post("/{code}/talent-map/kinerja", include_in_schema=False)
def programme_kinerja_upload(request: Request, code: str, db: DbSession, clock: ClockDep,
                             user: AdminUser, file: Annotated[UploadFile, File()]) -> Response:
    """Kinerja for the programme's people: all rows, or nothing with every problem located."""
    programme = _programme_or_404(db, code)
    name = (file.filename or "kinerja.csv").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_CSV_BYTES + 1)  # a plain def: read, parse and store off the loop
    lang = request_language(request)
    if len(data) > MAX_CSV_BYTES:
        return _map_page(request, db, programme, status_code=422, problems=[
            Problem(name, "", "", translate(lang, "talentmap.file_too_large"))])
    try:
        # Refused before anything is written: a bad row, a NIP outside the programme.
        done = service.import_programme_kinerja(db, programme=programme, data=data,
                                                source=name, actor=_actor(user),
                                                now=clock.now())
    except ImportFailed as exc:
        return _map_page(request, db, programme, status_code=422, problems=exc.problems)
    return _map_page(request, db, programme, notice=translate(
        lang, "talentmap.kinerja_done", people=done.people, added=done.counts.added,
        updated=done.counts.updated, unchanged=done.counts.unchanged, rescored=done.rescored))
