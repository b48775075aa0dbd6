"""Admin pages of assessment programmes: the list with a form to create one, one programme with
its sessions (attach, detach), its results across the sessions (filters, sort, counts, CSV and
XLSX), and one person's attempts with the choice of the one that counts."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from app import audit
from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.db import DbSession, WriteDb
from app.programmes import export, results, service
from app.programmes.models import Programme, Purpose
from app.reports import zipjob
from app.reports.export import validity_reason
from app.sessions.models import JobGroup
from app.sessions.service import session_by_code
from app.web import LANGUAGES, redirect, render, request_language, translate

router = APIRouter(prefix="/admin/programmes")
SORTS = {
    "nip": lambda r: (r.nip,),
    "name": lambda r: (r.name.lower(), r.nip),
    "jpm": lambda r: (r.jpm is None, -(r.jpm or 0), r.nip),
    "category": lambda r: (r.category == "", r.category, r.nip),
    "session": lambda r: (r.session_code, r.nip),
    "status": lambda r: (results.STATUSES.index(r.status), r.nip),
}
FILTERS = ("job_group", "unit", "category", "box", "status")


def _programme_or_404(db: Session, code: str) -> Programme:
    programme = service.programme_by_code(db, code)
    if programme is None:
        raise HTTPException(status_code=404)
    return programme


def _list_page(request: Request, db: Session, *, error: str = "", form: dict | None = None,
               status_code: int = 200) -> Response:
    return render(request, "programmes/list.html", status_code=status_code,
                  rows=service.programme_rows(db), purposes=[p.value for p in Purpose],
                  error=error, form=form or {})


@router.get("", include_in_schema=False)
def programmes_page(request: Request, db: DbSession, _user: AdminUser) -> Response:
    return _list_page(request, db)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value.strip() else None
    except ValueError:
        raise service.ProgrammeError("date_invalid", value=value[:20]) from None


@router.post("", include_in_schema=False)
def programme_create(request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
                     code: Annotated[str, Form(max_length=64)] = "",
                     name: Annotated[str, Form(max_length=400)] = "",
                     purpose: Annotated[str, Form(max_length=20)] = "mapping",
                     agency: Annotated[str, Form(max_length=400)] = "",
                     starts_on: Annotated[str, Form(max_length=20)] = "",
                     ends_on: Annotated[str, Form(max_length=20)] = "") -> Response:
    try:
        made = service.create_programme(db, code=code, name=name, purpose=purpose,
                                        agency=agency, starts_on=_date(starts_on),
                                        ends_on=_date(ends_on), actor=_actor(user),
                                        now=clock.now())
    except service.ProgrammeError as exc:
        return _list_page(request, db, error=exc.text(request_language(request)),
                          status_code=422, form={"code": code, "name": name, "agency": agency,
                                                 "purpose": purpose, "starts_on": starts_on,
                                                 "ends_on": ends_on})
    return redirect(request, f"/admin/programmes/{made.code}")


def _detail_page(request: Request, db: Session, programme: Programme, *, error: str = "",
                 notice: str = "", status_code: int = 200) -> Response:
    return render(request, "programmes/programme.html", status_code=status_code,
                  programme=programme, sessions=service.programme_sessions(db, programme),
                  free=service.free_sessions(db), error=error, notice=notice)


@router.get("/{code}", include_in_schema=False)
def programme_page(request: Request, code: str, db: DbSession, _user: AdminUser,
                   stale: int = 0, attached: str = "") -> Response:
    programme = _programme_or_404(db, code)
    notice = ""
    if attached:
        notice = translate(request_language(request), "programmes.attached", session=attached)
        if stale:
            notice += " " + translate(request_language(request), "programmes.stale",
                                      count=stale, session=attached)
    return _detail_page(request, db, programme, notice=notice)


@router.post("/{code}/sessions", include_in_schema=False)
def programme_attach(request: Request, code: str, db: DbSession, clock: ClockDep,
                     user: AdminUser, session: Annotated[str, Form(max_length=64)] = "",
                     detach: Annotated[str, Form(max_length=8)] = "") -> Response:
    programme = _programme_or_404(db, code)
    found = session_by_code(db, session)
    try:
        if found is None:
            raise service.ProgrammeError("session_missing", session=session[:40])
        if detach:
            service.detach_session(db, programme=programme, session=found,
                                   actor=_actor(user), now=clock.now())
            return redirect(request, f"/admin/programmes/{programme.code}")
        done = service.attach_session(db, programme=programme, session=found,
                                      actor=_actor(user), now=clock.now())
    except service.ProgrammeError as exc:
        return _detail_page(request, db, programme, status_code=422,
                            error=exc.text(request_language(request)))
    return redirect(request, f"/admin/programmes/{programme.code}?"
                    + urlencode({"attached": done.session.code, "stale": done.stale_results}))


def _filtered(table: results.ProgrammeResults, chosen: dict[str, str]) -> list[results.PersonRow]:
    rows = table.rows
    if chosen["job_group"]:
        rows = [r for r in rows if r.job_group == chosen["job_group"]]
    if chosen["unit"]:
        rows = [r for r in rows if r.unit == chosen["unit"]]
    if chosen["category"]:
        rows = [r for r in rows if r.category == chosen["category"]]
    if chosen["box"]:
        rows = [r for r in rows if str(r.nine_box or "") == chosen["box"]]
    if chosen["status"]:
        rows = [r for r in rows if r.status == chosen["status"]]
    return rows


@router.get("/{code}/results.{fmt}", include_in_schema=False)
def programme_results_file(code: str, fmt: str, db: WriteDb,
                           clock: ClockDep, user: AdminUser) -> Response:
    """CSV or XLSX; a GET that writes (the export is audited)."""
    if fmt not in export.FORMATS:
        raise HTTPException(status_code=404)
    programme = _programme_or_404(db, code)
    data = export.export_results(db, programme=programme, fmt=fmt, actor=_actor(user),
                                 now=clock.now())
    media = ("text/csv; charset=utf-8" if fmt == "csv" else
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="hasil-program-{programme.code}.{fmt}"'})


@router.get("/{code}/results", include_in_schema=False)
def programme_results_page(request: Request, code: str, db: DbSession, _user: AdminUser,
                           sort: str = "nip", job_group: str = "", unit: str = "",
                           category: str = "", box: str = "", status: str = "") -> Response:
    programme = _programme_or_404(db, code)
    table = results.programme_results(db, programme)
    chosen = {"job_group": job_group, "unit": unit, "category": category, "box": box,
              "status": status}
    sort = sort if sort in SORTS else "nip"
    rows = sorted(_filtered(table, chosen), key=SORTS[sort])
    lang = request_language(request)
    query = urlencode({k: v for k, v in chosen.items() if v})
    return render(request, "programmes/results.html", programme=programme, table=table,
                  rows=rows, sort=sort, chosen=chosen, query=query, sorts=list(SORTS),
                  units=sorted({r.unit for r in table.rows if r.unit}),
                  categories=sorted(table.by_category),
                  job_groups=[g.value for g in JobGroup], statuses=results.STATUSES,
                  reason_text=lambda r: "; ".join(validity_reason(x, lang) for x in r.reasons))


def _person_page(request: Request, db: Session, programme: Programme, nip: str, *,
                 error: str = "", status_code: int = 200) -> Response:
    table = results.programme_results(db, programme)
    row = next((r for r in table.rows if r.nip == nip), None)
    if row is None:
        raise HTTPException(status_code=404)
    lang = request_language(request)
    return render(request, "programmes/person.html", status_code=status_code,
                  programme=programme, row=row, error=error,
                  reason_text=lambda c: "; ".join(validity_reason(x, lang) for x in c.reasons))


@router.get("/{code}/people/{nip}", include_in_schema=False)
def programme_person(request: Request, code: str, nip: str, db: DbSession,
                     _user: AdminUser) -> Response:
    return _person_page(request, db, _programme_or_404(db, code), nip)


@router.post("/{code}/people/{nip}", include_in_schema=False)
def programme_person_choose(request: Request, code: str, nip: str, db: DbSession,
                            clock: ClockDep, user: AdminUser,
                            attempt: Annotated[str, Form(max_length=20)] = "",
                            reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    programme = _programme_or_404(db, code)
    try:
        attempt_id = int(attempt) if attempt.strip() not in ("", "rule") else None
    except ValueError:
        raise HTTPException(status_code=422) from None
    try:
        results.choose_attempt(db, programme=programme, nip=nip, attempt_id=attempt_id,
                               reason=reason, actor=_actor(user), now=clock.now())
    except service.ProgrammeError as exc:
        return _person_page(request, db, programme, nip, status_code=422,
                            error=exc.text(request_language(request)))
    return redirect(request, f"/admin/programmes/{programme.code}/people/{nip}")


# -- every individual report of the programme as one zip, in steps behind a progress bar ------

PROGRAMME = "programme"


def _data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


def _zip_fragment(request: Request, programme: Programme, job: zipjob.ZipJob | None) -> Response:
    return render(request, "reports/_zip.html", job=job, session={"code": programme.code},
                  zip_base=f"/admin/programmes/{programme.code}/reports",
                  zip_none="programmes.zip_none")


@router.post("/{code}/reports", include_in_schema=False)
def programme_zip_start(request: Request, code: str, db: DbSession, clock: ClockDep,
                        user: AdminUser, lang: Annotated[str, Form(max_length=2)] = "id"
                        ) -> Response:
    """Take the reports of the attempts that count and start rendering them (audited)."""
    programme = _programme_or_404(db, code)
    lang = lang if lang in LANGUAGES else "id"
    reports = results.programme_reports(db, programme, lang=lang,
                                        zone=request.app.state.settings.timezone)
    job = zipjob.start_reports(reports, owner=programme.code, data_dir=_data_dir(request),
                               lang=lang, actor=_actor(user), now=clock.now(), kind=PROGRAMME)
    audit.record(db, actor=_actor(user), action="report.zip",
                 target=f"programme:{programme.code}", now=clock.now(),
                 data={"job": job.job, "reports": job.total, "lang": lang})
    if request.headers.get("hx-request") == "true":
        return _zip_fragment(request, programme, job)
    return redirect(request, f"/admin/programmes/{programme.code}")


@router.get("/{code}/reports", include_in_schema=False)
def programme_zip_latest(request: Request, code: str, db: DbSession, _user: AdminUser
                         ) -> Response:
    programme = _programme_or_404(db, code)
    return _zip_fragment(request, programme, zipjob.latest_zip_job(
        _data_dir(request), programme.code, kind=PROGRAMME))


@router.post("/{code}/reports/{job}/step", include_in_schema=False)
def programme_zip_step(request: Request, code: str, job: str, _user: AdminUser) -> Response:
    """One poll of the progress bar (reads only the job's files, no database)."""
    owner = code.strip().upper()
    try:
        state = zipjob.advance_zip(_data_dir(request), job, session=owner, kind=PROGRAMME)
    except zipjob.JobNotFound:
        raise HTTPException(status_code=404) from None
    return render(request, "reports/_zip.html", job=state, session={"code": owner},
                  zip_base=f"/admin/programmes/{owner}/reports")


@router.get("/{code}/reports/{job}.zip", include_in_schema=False)
def programme_zip_download(request: Request, code: str, job: str, db: WriteDb,
                           clock: ClockDep, user: AdminUser) -> Response:
    programme = _programme_or_404(db, code)
    try:
        state = zipjob.zip_job(_data_dir(request), job, session=programme.code, kind=PROGRAMME)
        path = zipjob.zip_path(_data_dir(request), job, session=programme.code, kind=PROGRAMME)
    except zipjob.JobNotFound:
        raise HTTPException(status_code=404) from None
    audit.record(db, actor=_actor(user), action="report.download",
                 target=f"programme:{programme.code}", now=clock.now(),
                 data={"format": "zip", "job": job, "reports": state.total, "lang": state.lang})
    return FileResponse(path, media_type="application/zip", filename=f"laporan-{job}.zip")
