"""Admin pages for a session's results: the sortable results table, the audited rescore button,
and the CSV / XLSX downloads. Sorting is done by the server (links in the column headers), so
the page needs no script. The table is compact by default (name, job, unit, JPM, category,
potensi, box, validity) with every column one link away, and its rows come in groups: people
with a result first, then those without one yet, then the absent."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.auth.deps import AdminUser, ClockDep
from app.auth.deps import actor as _actor
from app.auth.models import User
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.db import DbSession, WriteDb
from app.reports.export import (
    ResultRow,
    ResultsTable,
    export_results,
    results_table,
    validity_reason,
)
from app.scoring.schemas import SORT_COLUMNS, ResultsQuery
from app.scoring.service import RESULT_FIELDS, SessionScoring, rescore_session
from app.sessions.deps import session_or_404 as _session_or_404
from app.sessions.models import TestSession
from app.web import redirect, render, request_language

router = APIRouter(prefix="/admin/sessions")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




def _sort_key(column: str):
    """A key that puts missing values last whichever the direction (see _sorted)."""
    def value(row: ResultRow) -> Any:
        if column.startswith("c:"):
            cell = row.constructs.get(column[2:])
            return None if cell is None else (cell.level or 0, cell.percent)
        return {"name": row.name.lower(), "nip": row.nip, "job": (row.job_group, row.grade),
                "unit": row.unit.lower() or None,
                "total": row.total, "jpm": row.jpm, "category": row.category or None,
                "band": row.potensi_band or None, "box": row.nine_box}[column]
    return value


def _sorted(table: ResultsTable, query: ResultsQuery) -> list[ResultRow]:
    key = _sort_key(query.sort)
    present = [r for r in table.rows if key(r) is not None]
    missing = [r for r in table.rows if key(r) is None]
    present.sort(key=lambda r: (key(r), r.nip), reverse=query.descending)
    return present + missing


# The results page shows its rows in these groups, in this order: people with a result, people
# who came but have none yet (still working, or handed in and not scored), and the absent.
RESULT_GROUPS = ("scored", "pending", "absent")


def _group(row: ResultRow) -> str:
    if row.scored:
        return "scored"
    return "absent" if row.status == "absent" else "pending"


def _grouped(rows: list[ResultRow]) -> list[tuple[str, list[ResultRow]]]:
    """The sorted rows split into RESULT_GROUPS (each keeps the sort), empty groups left out."""
    groups: dict[str, list[ResultRow]] = {name: [] for name in RESULT_GROUPS}
    for row in rows:
        groups[_group(row)].append(row)
    return [(name, members) for name, members in groups.items() if members]


def _construct_label(code: str, lang: str) -> str:
    known = KNOWN_CONSTRUCTS.get(code)
    if known is None:
        return code
    return known.name_id if lang == "id" else known.name_en


def _page(request: Request, db: Session, session: TestSession, query: ResultsQuery, *,
          status_code: int = 200, error: str = "", notice: str = "",
          all_columns: bool = False) -> Response:
    table = results_table(db, session)
    lang = request_language(request)
    rows = _sorted(table, query)
    return render(
        request, "scoring/results.html", fragment="scoring/_results_table.html",
        status_code=status_code, session=session, table=table,
        rows=rows, groups=_grouped(rows), all_columns=all_columns,
        query=query, error=error, notice=notice,
        construct_labels={c: _construct_label(c, lang) for c in table.constructs},
        scored=sum(1 for r in table.rows if r.scored), sort_columns=SORT_COLUMNS,
        not_scoreable={r.nip: [validity_reason(x, lang) for x in r.validity.get("reasons", [])]
                       for r in table.rows if r.not_scoreable})


def _rescore_query(summary: SessionScoring) -> str:
    """What the rescore changed, for the page it redirects to (``fields=jpm:89,category:12``)."""
    fields = summary.as_json()["fields"]
    return urlencode({"rescored": summary.scored, "changed": summary.changed,
                      "unchanged": summary.unchanged, "new": summary.new,
                      "fields": ",".join(f"{name}:{count}" for name, count in fields.items())})


def _rescore_notice(lang: str, rescored: int, changed: int, unchanged: int, new: int,
                    fields: str) -> str:
    """The same counts as the audit row and the CLI: results checked, changed (and in what),
    unchanged. Field names not known are left out."""
    from app.web import translate

    if not changed and not new:
        return translate(lang, "results.up_to_date", scored=rescored)
    text = translate(lang, "results.rescored", scored=rescored, changed=changed,
                     unchanged=unchanged)
    if new:
        text += " " + translate(lang, "results.rescored_new", new=new)
    counts = dict(part.split(":", 1) for part in fields.split(",") if ":" in part)
    named = [f"{translate(lang, 'results.field_' + name)} {counts[name]}"
             for name in RESULT_FIELDS if counts.get(name, "").isdigit()]
    if named:
        text += " " + translate(lang, "results.rescored_fields", fields=", ".join(named))
    return text


@router.get("/{code}/results", include_in_schema=False)
def results_page(request: Request, code: str, db: DbSession, _user: AdminUser,
                 sort: str = "nip", dir: str = "asc", rescored: int | None = None,
                 changed: int | None = None, unchanged: int = 0, new: int = 0,
                 fields: str = "", view: str = "") -> Response:
    session = _session_or_404(db, code)
    query = ResultsQuery.parse(sort, dir)
    notice = ""
    if rescored is not None and changed is not None:
        notice = _rescore_notice(request_language(request), rescored, changed, unchanged, new,
                                 fields[:500])
    # The compact view fits a 1024 px screen; ``view=all`` adds every construct and the total
    # (the export has all of them and more).
    return _page(request, db, session, query, notice=notice, all_columns=view == "all")


@router.post("/{code}/results/rescore", include_in_schema=False)
async def results_rescore(
    request: Request, code: str, db: DbSession, clock: ClockDep, user: AdminUser,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = _session_or_404(db, code)
    try:
        summary = rescore_session(db, session=session, actor=_actor(user), now=clock.now(),
                                  reason=reason.strip())
    except ValueError as exc:  # the session's scoring settings are wrong
        from app.web import translate

        return _page(request, db, session, ResultsQuery(), status_code=422,
                     error=translate(request_language(request), "results.error_settings",
                                     detail=str(exc)))
    return redirect(request, f"/admin/sessions/{session.code}/results?"
                             + _rescore_query(summary))


def _download(db: Session, session: TestSession, user: User, fmt: str, now) -> Response:
    data, _ = export_results(db, session, fmt=fmt, actor=_actor(user), now=now)
    media = "text/csv; charset=utf-8" if fmt == "csv" else XLSX_TYPE
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="hasil-{session.code}.{fmt}"'})


@router.get("/{code}/results.csv", include_in_schema=False)
def results_csv(code: str, db: WriteDb, clock: ClockDep, user: AdminUser) -> Response:
    return _download(db, _session_or_404(db, code), user, "csv", clock.now())


@router.get("/{code}/results.xlsx", include_in_schema=False)
def results_xlsx(code: str, db: WriteDb, clock: ClockDep, user: AdminUser) -> Response:
    return _download(db, _session_or_404(db, code), user, "xlsx", clock.now())
