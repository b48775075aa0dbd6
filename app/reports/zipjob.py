"""All individual reports of a session (or of a programme: app/programmes/routes.py) as one
zip, built in steps behind a progress bar.

The job keeps its whole state in files under ``<data_dir>/reports/`` so that any app worker
can continue a job another one started, and a restart loses nothing:

* ``<job>.json``            what the job is (session, language, count, who, when, done or not);
* ``<job>.parts/data.json`` the reports' data, taken from the database once when the job
  starts (so rendering needs no database and never holds SQLite's write lock);
* ``<job>.parts/NNNN.pdf``  the PDFs rendered so far (each written atomically): progress is
  simply how many exist;
* ``<job>.zip``             the finished archive, written to a temporary name and renamed.

Each poll of the progress fragment renders PDFs for about a second under an exclusive
``flock`` of ``<job>.lock`` (a second worker polling meanwhile only reports progress). Jobs
older than a day are removed when a new one starts: the zips hold personal data and are not
an archive.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.reports.individual import (
    CompetencyRow,
    IndividualReport,
    PotensiRow,
    individual_report_pdf,
)
from app.reports.service import pdf_filename, session_reports
from app.sessions.models import TestSession

try:  # POSIX; the lab servers are Linux. Without it the job still works in one worker.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

JOB_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,31}-\d{8}-\d{6}-[a-z0-9]{6}$")
STEP_SECONDS = 1.0  # work per poll; the page polls every second
KEEP = timedelta(days=1)  # finished or abandoned jobs older than this are removed


class JobNotFound(Exception):
    pass


@dataclass
class ZipJob:
    job: str
    session: str  # the owner's code: a session's, or a programme's when kind is "programme"
    lang: str
    total: int
    created_at: str
    actor: str
    done: int = 0
    finished: bool = False
    size: int = 0
    kind: str = "session"

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return int(self.done * 100 / self.total) if self.total else 0

    @property
    def filename(self) -> str:
        return f"{self.job}.zip"


def reports_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _report_json(report: IndividualReport) -> dict[str, Any]:
    data = asdict(report)
    data["date"] = report.date.isoformat()
    data["jpm"] = None if report.jpm is None else str(report.jpm)
    data["competencies"] = [list(row) for row in report.competencies]
    data["potensi"] = [[r[0], str(r[1]), *r[2:]] for r in report.potensi]
    return data


def _report_from_json(data: dict[str, Any]) -> IndividualReport:
    data = dict(data)
    data["date"] = datetime.fromisoformat(data["date"])
    data["jpm"] = _dec(data.get("jpm"))
    data["competencies"] = [CompetencyRow(*row) for row in data["competencies"]]
    data["potensi"] = [PotensiRow(row[0], Decimal(row[1]), *row[2:]) for row in data["potensi"]]
    return IndividualReport(**data)


def _job_paths(data_dir: Path, job: str) -> tuple[Path, Path, Path, Path]:
    if not JOB_RE.match(job):
        raise JobNotFound(job)
    base = reports_dir(data_dir)
    return (base / f"{job}.json", base / f"{job}.parts", base / f"{job}.lock",
            base / f"{job}.zip")


def _load(meta_path: Path) -> ZipJob:
    try:
        return ZipJob(**json.loads(meta_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        raise JobNotFound(meta_path.stem) from None


def _cleanup(data_dir: Path, now: datetime) -> None:
    """Remove jobs older than KEEP (their zips hold personal data; they are not an archive)."""
    base = reports_dir(data_dir)
    for meta in base.glob("*.json"):
        try:
            job = _load(meta)
            created = datetime.fromisoformat(job.created_at)
        except (JobNotFound, ValueError):
            continue
        if now - created > KEEP:
            _, parts, lock, archive = _job_paths(data_dir, job.job)
            shutil.rmtree(parts, ignore_errors=True)
            for path in (archive, lock, meta):
                path.unlink(missing_ok=True)


def start_zip(db: Session, *, session: TestSession, data_dir: Path, lang: str, actor: str,
              now: datetime, zone: ZoneInfo | str = "Asia/Jakarta") -> ZipJob:
    """Take the session's reports from the database and create a job that renders them.
    The caller audits it."""
    reports = [r.individual_report() for r in session_reports(db, session=session,
                                                                   lang=lang, zone=zone)]
    return start_reports(reports, owner=session.code, data_dir=data_dir, lang=lang,
                         actor=actor, now=now)


def start_reports(reports: list[IndividualReport], *, owner: str, data_dir: Path, lang: str,
                  actor: str, now: datetime, kind: str = "session") -> ZipJob:
    """A job that renders these reports; ``owner`` is the session's (or, with ``kind``
    "programme", the programme's) code, which every later call must name."""
    _cleanup(data_dir, now)
    job_id = f"{owner}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    meta, parts, _, _ = _job_paths(data_dir, job_id)
    parts.mkdir()
    _write_atomic(parts / "data.json", json.dumps(
        [_report_json(r) for r in reports], ensure_ascii=False).encode("utf-8"))
    job = ZipJob(job=job_id, session=owner, lang=lang, total=len(reports),
                 created_at=now.isoformat(), actor=actor, kind=kind)
    _write_atomic(meta, json.dumps(asdict(job)).encode("utf-8"))
    return job


def zip_job(data_dir: Path, job: str, *, session: str | None = None,
            kind: str = "session") -> ZipJob:
    """The job's state as the files say (raises JobNotFound, also for another owner's)."""
    meta, parts, _, archive = _job_paths(data_dir, job)
    state = _load(meta)
    if session is not None and (state.session, state.kind) != (session, kind):
        raise JobNotFound(job)
    if not state.finished:
        state.done = len(list(parts.glob("[0-9]*.pdf"))) if parts.exists() else 0
    elif archive.exists():
        state.size = archive.stat().st_size
    return state


def latest_zip_job(data_dir: Path, session: str, *, kind: str = "session") -> ZipJob | None:
    """The owner's most recent job, if any is still kept."""
    base = reports_dir(data_dir)
    jobs = []
    for meta in base.glob(f"{session}-*.json"):
        try:
            jobs.append(zip_job(data_dir, meta.stem, session=session, kind=kind))
        except JobNotFound:
            continue
    return max(jobs, key=lambda j: (j.created_at, j.job)) if jobs else None


def advance_zip(data_dir: Path, job: str, *, session: str | None = None,
                budget_s: float = STEP_SECONDS, kind: str = "session") -> ZipJob:
    """Render the next PDFs for about ``budget_s`` seconds (at least one), and write the zip
    once all are there. Safe to call from several workers at once: the one holding the lock
    works, the others only read the progress."""
    meta, parts, lock_path, archive = _job_paths(data_dir, job)
    state = zip_job(data_dir, job, session=session, kind=kind)
    if state.finished:
        return state
    with lock_path.open("a+") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return state  # another worker is rendering this job right now
        state = zip_job(data_dir, job, session=session, kind=kind)  # finished meanwhile?
        if state.finished:
            return state
        data = json.loads((parts / "data.json").read_text(encoding="utf-8"))
        started, rendered = time.monotonic(), 0
        for index, item in enumerate(data):
            path = parts / f"{index:04d}.pdf"
            if path.exists():
                continue
            if rendered and time.monotonic() - started >= budget_s:
                break
            rendered += 1
            _write_atomic(path, individual_report_pdf(_report_from_json(item),
                                                      lang=state.lang))
        state.done = len(list(parts.glob("[0-9]*.pdf")))
        if state.done >= len(data):
            tmp = archive.with_name(f".{archive.name}.tmp")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                for index, item in enumerate(data):
                    bundle.write(parts / f"{index:04d}.pdf",
                                 pdf_filename(item["nip"], item["name"], state.lang))
            os.replace(tmp, archive)
            state.finished, state.done = True, len(data)
            state.size = archive.stat().st_size
            _write_atomic(meta, json.dumps(asdict(state)).encode("utf-8"))
            shutil.rmtree(parts, ignore_errors=True)
    return state


def zip_path(data_dir: Path, job: str, *, session: str, kind: str = "session") -> Path:
    """The finished archive (JobNotFound when it is not, or not yet, there)."""
    state = zip_job(data_dir, job, session=session, kind=kind)
    archive = _job_paths(data_dir, job)[3]
    if not state.finished or not archive.exists():
        raise JobNotFound(job)
    return archive
