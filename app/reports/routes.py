"""Admin pages for reports: one participant's report (page and audited PDF), all reports of a
session as one zip built in steps with a progress bar, and the session's talent map with the
kinerja upload that fills it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from app import audit
from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.bank.parsed import ImportFailed, Problem
from app.db import DbSession, WriteDb
from app.reports import service, zipjob
from app.reports.export import results_table
from app.reports.ninebox import ninebox_svg
from app.scoring import decisions
from app.scoring.imports import import_ratings, parse_ratings
from app.sessions import roster
from app.sessions.deps import session_or_404 as _session_or_404
from app.sessions.models import Participant, TestSession
from app.sessions.service import session_by_code
from app.web import LANGUAGES, redirect, render, request_language, translate

router = APIRouter(prefix="/admin/sessions")
MAX_CSV_BYTES = 2 * 1024 * 1024
SVG_TEXTS = ("performance", "potential", "below", "as_expected", "above", "low", "medium",
             "high", "box", "people", "more", "title")




def _lang(request: Request, lang: str | None) -> str:
    if lang in LANGUAGES:
        return lang
    return request_language(request)


def _zone(request: Request) -> str:
    return request.app.state.settings.timezone


def _data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


# -- all reports as one zip (the routes with fixed words come before /results/{nip}) ------------


def _zip_fragment(request: Request, session: TestSession, job: zipjob.ZipJob | None, *,
                  status_code: int = 200, missing: bool = False) -> Response:
    return render(request, "reports/zip.html", fragment="reports/_zip.html",
                  status_code=status_code, session=session, job=job,
                  missing=missing)


@router.post("/{code}/reports", include_in_schema=False)
async def zip_start(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    lang: Annotated[str, Form(max_length=2)] = "id",
) -> Response:
    session = _session_or_404(db, code)
    lang = lang if lang in LANGUAGES else "id"
    job = zipjob.start_zip(db, session=session, data_dir=_data_dir(request), lang=lang,
                            actor=_actor(user), now=clock.now(), zone=_zone(request))
    audit.record(db, actor=_actor(user), action="report.zip", target=f"session:{session.code}",
                 now=clock.now(), data={"job": job.job, "reports": job.total, "lang": lang})
    if request.headers.get("hx-request") == "true":
        return _zip_fragment(request, session, job)
    return redirect(request, f"/admin/sessions/{session.code}/reports/{job.job}")


@router.get("/{code}/reports", include_in_schema=False)
def zip_latest(request: Request, code: str, db: DbSession, _user: AdminUser) -> Response:
    """The session's latest zip job (the results page loads it into its card)."""
    session = _session_or_404(db, code)
    return _zip_fragment(request, session,
                         zipjob.latest_zip_job(_data_dir(request), session.code))


@router.get("/{code}/reports/{job}.zip", include_in_schema=False)
def zip_download(request: Request, code: str, job: str, db: WriteDb, clock: ClockDep,
                 user: AdminUser) -> Response:
    session = _session_or_404(db, code)
    try:
        state = zipjob.zip_job(_data_dir(request), job, session=session.code)
        path = zipjob.zip_path(_data_dir(request), job, session=session.code)
    except zipjob.JobNotFound:
        raise HTTPException(status_code=404) from None
    audit.record(db, actor=_actor(user), action="report.download",
                 target=f"session:{session.code}", now=clock.now(),
                 data={"format": "zip", "job": job, "reports": state.total,
                       "lang": state.lang})
    return FileResponse(path, media_type="application/zip", filename=f"laporan-{job}.zip")


@router.get("/{code}/reports/{job}", include_in_schema=False)
def zip_page(request: Request, code: str, job: str, db: DbSession, _user: AdminUser
             ) -> Response:
    session = _session_or_404(db, code)
    try:
        state = zipjob.zip_job(_data_dir(request), job, session=session.code)
    except zipjob.JobNotFound:
        return _zip_fragment(request, session, None, status_code=404, missing=True)
    return _zip_fragment(request, session, state)


@router.post("/{code}/reports/{job}/step", include_in_schema=False)
def zip_step(request: Request, code: str, job: str, _user: AdminUser) -> Response:
    """One poll of the progress bar: render PDFs for about a second, then report. It reads
    only the job's files (the data was taken when the job started), so it opens no database
    transaction and never holds SQLite's write lock while rendering."""
    session_code = code.strip().upper()
    try:
        state = zipjob.advance_zip(_data_dir(request), job, session=session_code)
    except zipjob.JobNotFound:
        raise HTTPException(status_code=404) from None
    return render(request, "reports/_zip.html", job=state,
                  session={"code": session_code})


# -- one participant's report -------------------------------------------------------------------


def _report_or_404(request: Request, db: Session, session: TestSession, nip: str,
                   lang: str) -> service.ParticipantReport:
    report = service.participant_report(db, session=session, nip=nip, lang=lang,
                                        zone=_zone(request))
    if report is None:
        raise HTTPException(status_code=404)
    return report


@router.get("/{code}/results/{nip}.pdf", include_in_schema=False)
def report_pdf(request: Request, code: str, nip: str, db: WriteDb, clock: ClockDep,
               user: AdminUser, lang: str | None = None) -> Response:
    session = _session_or_404(db, code)
    lang = lang if lang in LANGUAGES else "id"
    report = _report_or_404(request, db, session, nip, lang)
    if not report.scored:
        raise HTTPException(status_code=404)
    data = service.report_pdf(report, lang)
    audit.record(db, actor=_actor(user), action="report.download", target=f"participant:{nip}",
                 now=clock.now(), data={"format": "pdf", "session": session.code,
                                        "lang": lang})
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition":
            f'attachment; filename="{service.pdf_filename(nip, report.name, lang)}"'})


@router.get("/{code}/results/{nip}", include_in_schema=False)
def report_page(request: Request, code: str, nip: str, db: DbSession, user: AdminUser,
                clock: ClockDep, lang: str | None = None) -> Response:
    session = _session_or_404(db, code)
    lang = _lang(request, lang)
    report = _report_or_404(request, db, session, nip, lang)
    # Who looked at whose results, as for the PDF of the same report.
    with request.app.state.db.transaction() as audit_db:
        audit.record(audit_db, actor=_actor(user), action="report.view",
                     target=f"participant:{nip}", now=clock.now(),
                     data={"session": session.code, "lang": lang})
    return render(request, "reports/individual.html", session=session,
                  report=report, rating_key=_rating_key,
                  decisions=_decision_forms(db, session, report))


def _decision_forms(db: Session, session: TestSession, report: service.ParticipantReport, *,
                    error: str = "", form: str = "") -> dict[str, object]:
    """What the decision forms of a not-scoreable result need: the retake already scheduled
    (then no form is shown), else the sessions a retake can be scheduled in; and the refusal
    a form got (``error``, shown beside ``form``)."""
    retake = (decisions.retake_of(db, session=session, nip=report.nip)
              if report.not_scoreable else None)
    return {"retake": retake, "error": error, "form": form,
            "targets": decisions.retake_targets(db, session)
            if report.not_scoreable and not retake else []}


def _decision_refused(request: Request, db: Session, session: TestSession, nip: str,
                      exc: decisions.DecisionRefused, form: str) -> Response:
    lang = request_language(request)
    report = _report_or_404(request, db, session, nip, lang)
    return render(request, "reports/individual.html", status_code=422, session=session,
                  report=report, rating_key=_rating_key,
                  decisions=_decision_forms(db, session, report, form=form,
                                            error=translate(lang, exc.key, **exc.params)))


@router.post("/{code}/results/{nip}/accept", include_in_schema=False)
def report_accept(request: Request, code: str, nip: str, db: DbSession, clock: ClockDep,
                  user: AdminUser, reason: Annotated[str, Form(max_length=2000)] = ""
                  ) -> Response:
    """Accept an attempt that is not scoreable, with a reason (audited; it is rescored)."""
    session = _session_or_404(db, code)
    try:
        decisions.accept(db, session=session, nip=nip, reason=reason, actor=_actor(user),
                         now=clock.now())
    except decisions.DecisionRefused as exc:
        return _decision_refused(request, db, session, nip, exc, "accept")
    return redirect(request, f"/admin/sessions/{session.code}/results/{nip}")


@router.post("/{code}/results/{nip}/retake", include_in_schema=False)
def report_retake(request: Request, code: str, nip: str, db: DbSession, clock: ClockDep,
                  user: AdminUser, reason: Annotated[str, Form(max_length=2000)] = "",
                  target: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Schedule a retake of an attempt that is not scoreable in another session that is not
    closed, with a reason: the person is put on its roster with a fresh token (audited; this
    result stays withheld)."""
    session = _session_or_404(db, code)
    target_session = session_by_code(db, target) if target.strip() else None
    try:
        if target_session is None:
            raise decisions.DecisionRefused("validity.error_retake_target")
        decisions.schedule_retake(db, session=session, nip=nip, target_session=target_session,
                                  reason=reason, actor=_actor(user), now=clock.now(),
                                  enrol=_enrol(db, request.app.state.secret, _actor(user),
                                               clock.now()))
    except decisions.DecisionRefused as exc:
        return _decision_refused(request, db, session, nip, exc, "retake")
    return redirect(request, f"/admin/sessions/{session.code}/results/{nip}")


def _enrol(db: Session, secret: str, actor: str, now: datetime) -> decisions.Enrol:
    """A retake's roster entry: the roster import of one row, the person's details as they
    are, so the entry gets a fresh login token the way every imported one does."""
    def enrol(target: TestSession, person: Participant) -> None:
        roster.import_roster(db, session=target, rows=[roster.RosterRow(
            nip=person.nip, name=person.name, job_group=person.job_group.value,
            grade=person.grade, position=person.position, unit=person.unit)],
            secret=secret, actor=actor, now=now)
    return enrol


def _rating_key(performance: dict | None) -> str:
    rating = (performance or {}).get("rating", "")
    return f"report.rating_{rating}" if rating in ("below", "as_expected", "above") else ""


# -- the talent map -----------------------------------------------------------------------------


def _talent_page(request: Request, db: Session, session: TestSession, *, status_code: int = 200,
                 problems: list[Problem] | None = None, notice: str = "") -> Response:
    lang = request_language(request)
    table = results_table(db, session)
    scored = [r for r in table.rows if r.scored]
    boxes, unplaced = service.nine_box_groups((r.name, r.nip, r.nine_box) for r in scored)
    actions = {box: service.box_action(box, lang) for box in service.BOXES}
    svg = ninebox_svg([(r.name, r.nine_box) for r in scored if r.nine_box is not None], actions,
                      texts={k: translate(lang, f"talent.svg_{k}") for k in SVG_TEXTS})
    axis = ((session.settings or {}).get("scoring") or {}).get("performance_axis", "rating")
    return render(
        request, "reports/talent_map.html", status_code=status_code,
        session=session, svg=svg, boxes=boxes,
        unplaced=unplaced, scored=len(scored), actions=actions,
        places={box: service.box_placement(box, lang) for box in service.BOXES},
        placed=sum(len(v) for v in boxes.values()), axis=axis, problems=problems or [],
        notice=notice)


@router.get("/{code}/talent-map", include_in_schema=False)
def talent_map(request: Request, code: str, db: DbSession, _user: AdminUser) -> Response:
    return _talent_page(request, db, _session_or_404(db, code))


@router.post("/{code}/talent-map/kinerja", include_in_schema=False)
def kinerja_upload(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    file: Annotated[UploadFile, File()],
) -> Response:
    session = _session_or_404(db, code)
    name = (file.filename or "kinerja.csv").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_CSV_BYTES + 1)  # a plain def: read, parse and store off the loop
    lang = request_language(request)
    if len(data) > MAX_CSV_BYTES:
        return _talent_page(request, db, session, status_code=422, problems=[
            Problem(name, "", "", translate(lang, "talent.file_too_large"))])
    try:
        rows = parse_ratings(data, source=name)
        counts, rescored = import_ratings(db, rows=rows, source=name, actor=_actor(user),
                                          now=clock.now())
    except ImportFailed as exc:
        return _talent_page(request, db, session, status_code=422, problems=exc.problems)
    return _talent_page(request, db, session, notice=translate(
        lang, "talent.kinerja_done", added=counts.added, updated=counts.updated,
        unchanged=counts.unchanged, rescored=rescored))
