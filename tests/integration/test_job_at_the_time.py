"""A person promoted between two tests: the roster of the second session changes their current
job, but the first session's result, its rescoring, its report and its export keep the job they
had on the day of the first test (the standard a result is read against)."""

from __future__ import annotations

from sqlalchemy import select

from app.auth.security import decrypt_token
from app.delivery import attempts, timing
from app.delivery.models import Attempt
from app.reports.export import results_table
from app.reports.service import participant_report
from app.scoring.models import Result
from app.scoring.service import rescore_session
from app.sessions.models import Participant, RosterEntry
from app.sessions.roster import RosterRow, import_roster
from tests.factories import make_open_session

SECRET = "s" * 40
NIP = "198503152010011001"


def row(job_group: str, position: str, unit: str) -> RosterRow:
    return RosterRow(nip=NIP, name="Dewi Lestari", job_group=job_group, grade="",
                     position=position, unit=unit)


def test_the_job_on_the_roster_of_each_test_stays_with_its_result(db, clock):
    first, _ = make_open_session(db, clock, secret=SECRET, participants=1, code="TAHUN1")
    import_roster(db, session=first, rows=[row("pengawas", "Kepala Subbagian Umum",
                                               "Dinas Pendidikan")],
                  secret=SECRET, actor="test", now=clock.now())
    entry = db.scalars(select(RosterEntry).join(Participant).where(
        Participant.nip == NIP)).one()
    token = decrypt_token(SECRET, entry.token_encrypted)
    attempt = attempts.login(db, nip=NIP, token=token, workstation="PC-1",
                             client_addr="10.0.0.1", secret=SECRET, now=clock.now()).attempt
    timing.start(db, attempt=attempt, now=clock.now())
    timing.submit(db, attempt=attempt, reason="taker", actor="taker:test", now=clock.now())
    assert db.scalars(select(Result.detail).where(Result.attempt_id == attempt.id)
                      ).one()["job_key"] == "pengawas"

    clock.advance(365 * 86400)  # a year later, promoted and moved
    second, _ = make_open_session(db, clock, secret=SECRET, participants=1, code="TAHUN2",
                                  first=50)
    import_roster(db, session=second, rows=[row("administrator", "Kepala Bagian Umum",
                                                "Sekretariat Daerah")],
                  secret=SECRET, actor="test", now=clock.now())
    person = db.scalars(select(Participant).where(Participant.nip == NIP)).one()
    assert (person.job_group.value, person.unit) == ("administrator", "Sekretariat Daerah")

    rescore_session(db, session=first, actor="admin", now=clock.now(), reason="uji")
    result = db.scalars(select(Result).join(Attempt).where(Attempt.session_id == first.id)
                        .where(Result.attempt_id == attempt.id)).one()
    assert result.detail["job_key"] == "pengawas"  # not the job of today
    report = participant_report(db, session=first, nip=NIP)
    assert (report.job_group, report.position, report.unit) == (
        "pengawas", "Kepala Subbagian Umum", "Dinas Pendidikan")
    exported = next(r for r in results_table(db, first).rows if r.nip == NIP)
    assert (exported.job_group, exported.unit) == ("pengawas", "Dinas Pendidikan")
    later = participant_report(db, session=second, nip=NIP)
    assert (later.job_group, later.unit) == ("administrator", "Sekretariat Daerah")
