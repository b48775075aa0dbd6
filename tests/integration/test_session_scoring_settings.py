"""A session's scoring settings (purpose of the assessment, JPM cap) from `cact session
settings` and the admin session page: one audited service function
(app/sessions/scoring_settings.py), bad values refused with a clear message and nothing
written, stored results not rescored but reported as needing a rescore, and after the rescore
the categories follow the placement table (SQLite and PostgreSQL). The session is the one of
test_scoring_service.py: participant 1 (administrator) has a JPM of 83.33, participant 2
(pengawas) a blank test and a JPM of 50."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import audit
from app.scoring.models import Result
from app.sessions.models import TestSession
from app.sessions.scoring_settings import current, set_scoring_settings, stale_results
from app.sessions.service import SessionError
from tests.conftest import csrf_from
from tests.integration.test_demo_and_cli import cact
from tests.integration.test_scoring_service import ANSWERS_1, build_session, take_test

MAPPING = ["Cukup Optimal", "Kurang Optimal"]  # 83.33 and 50: >= 78, < 78
PLACEMENT = ["Memenuhi Syarat", "Kurang Memenuhi Syarat"]  # 83.33 and 50: >= 80, < 68


@pytest.fixture
def scored_session(database, clock):
    with database.transaction() as db:
        _, logins = build_session(db, clock)
        take_test(db, clock, *logins[0], ANSWERS_1)
        take_test(db, clock, *logins[1], {})
    return logins


def _categories(database) -> list[str]:
    with database.transaction(write=False) as db:
        return [r.category for r in db.scalars(select(Result).order_by(Result.attempt_id))]


def _settings(database) -> dict:
    with database.transaction(write=False) as db:
        return dict(db.scalar(select(TestSession).where(TestSession.code == "S1")).settings)


def _events(database) -> list[audit.AuditEvent]:
    with database.transaction(write=False) as db:
        return list(db.scalars(select(audit.AuditEvent).where(
            audit.AuditEvent.action == "session.scoring_settings").order_by(audit.AuditEvent.id)))


def test_the_command_line_prints_sets_and_says_a_rescore_is_needed(database, scored_session):
    url = database.url
    shown = cact(url, "session", "settings", "S1")
    assert shown.returncode == 0, shown.stderr
    assert "purpose: mapping (Optimal / Cukup Optimal / Kurang Optimal)" in shown.stdout
    assert "jpm cap: on" in shown.stdout and "rescore" not in shown.stdout
    assert _events(database) == []  # printing changes nothing

    changed = cact(url, "session", "settings", "s1", "--purpose", "position", "--jpm-cap", "off")
    assert changed.returncode == 0, changed.stderr
    assert "scoring settings changed" in changed.stdout
    assert ("purpose: position (Memenuhi Syarat / Masih Memenuhi Syarat / Kurang Memenuhi "
            "Syarat)") in changed.stdout
    assert "jpm cap: off" in changed.stdout
    assert ("2 result(s) were scored with other settings: run `cact results rescore S1`"
            in changed.stdout)
    assert _settings(database)["scoring"] == {"purpose": "placement", "jpm_cap": False}
    assert _categories(database) == MAPPING  # not rescored behind the admin's back
    [event] = _events(database)
    assert (event.actor, event.target) == ("cli", "session:S1")
    assert event.data == {"old": {"purpose": "mapping", "jpm_cap": True},
                          "new": {"purpose": "placement", "jpm_cap": False},
                          "stale_results": 2}

    for args, message in ((("--purpose", "promosi"), "Unknown purpose of the assessment "
                           "'promosi': choose mapping"),
                          (("--jpm-cap", "maybe"), "Unknown JPM cap 'maybe': write on")):
        refused = cact(url, "session", "settings", "S1", *args)
        assert refused.returncode == 1 and "Not changed: " + message in refused.stderr, \
            refused.stderr
    assert cact(url, "session", "settings", "NOPE").returncode == 1
    same = cact(url, "session", "settings", "S1", "--purpose", "placement")  # the stored word
    assert same.returncode == 0 and "changed" not in same.stdout
    assert len(_events(database)) == 1 and _settings(database)["scoring"]["purpose"] == \
        "placement"

    rescored = cact(url, "results", "rescore", "S1")
    assert rescored.returncode == 0, rescored.stderr
    assert "Memenuhi Syarat: 1" in rescored.stdout
    assert "Kurang Memenuhi Syarat: 1" in rescored.stdout
    assert _categories(database) == PLACEMENT
    after = cact(url, "session", "settings", "S1")
    assert "purpose: position" in after.stdout and "rescore" not in after.stdout


def test_the_session_page_form_sets_audits_and_refuses_bad_values(
        admin, database, scored_session):
    page = admin.get("/admin/sessions/S1")
    assert page.status_code == 200
    assert 'data-testid="scoring-form"' in page.text
    assert '<option value="mapping" selected>' in page.text
    assert '<option value="on" selected>' in page.text
    assert 'data-testid="scoring-stale"' not in page.text
    token = csrf_from(page.text)

    bad = admin.post("/admin/sessions/S1/scoring",
                     data={"csrf_token": token, "purpose": "promosi", "jpm_cap": "on"},
                     follow_redirects=False)
    assert bad.status_code == 422
    assert "Tujuan asesmen &#39;promosi&#39; tidak dikenal" in bad.text
    assert 'data-testid="scoring-error"' in bad.text
    bad_cap = admin.post("/admin/sessions/S1/scoring",
                         data={"csrf_token": token, "purpose": "mapping", "jpm_cap": "ya"},
                         follow_redirects=False)
    assert bad_cap.status_code == 422 and "Batas JPM &#39;ya&#39; tidak dikenal" in bad_cap.text
    assert _events(database) == [] and "scoring" not in _settings(database)

    done = admin.post("/admin/sessions/S1/scoring",
                      data={"csrf_token": token, "purpose": "placement", "jpm_cap": "on"},
                      follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/sessions/S1?scoring=saved#scoring"
    shown = admin.get("/admin/sessions/S1?scoring=saved")
    assert "Pengaturan penilaian disimpan." in shown.text
    assert '<option value="placement" selected>' in shown.text
    assert "2 hasil dihitung dengan pengaturan lain" in shown.text
    assert 'href="/admin/sessions/S1/results"' in shown.text
    [event] = _events(database)
    assert event.actor == "user:admin"
    assert (event.data["old"], event.data["new"]) == (
        {"purpose": "mapping", "jpm_cap": True}, {"purpose": "placement", "jpm_cap": True})
    assert _categories(database) == MAPPING

    rescore = admin.post("/admin/sessions/S1/results/rescore",
                         data={"csrf_token": token}, follow_redirects=False)
    assert rescore.status_code == 303
    assert _categories(database) == PLACEMENT
    assert "Memenuhi Syarat" in admin.get("/admin/sessions/S1/results").text
    assert 'data-testid="scoring-stale"' not in admin.get("/admin/sessions/S1").text

    admin.cookies.set("cact_lang", "en")
    english = admin.post("/admin/sessions/S1/scoring",
                         data={"csrf_token": token, "purpose": "x", "jpm_cap": "on"})
    assert english.status_code == 422 and "Unknown purpose of the assessment" in english.text


def test_the_service_keeps_what_is_not_given_and_records_only_changes(db, clock):
    session, _ = build_session(db, clock, participants=1)
    assert current(session).purpose == "mapping" and current(session).jpm_cap is True
    kept = set_scoring_settings(db, session=session, purpose=None, jpm_cap="", actor="t",
                                now=clock.now())
    assert not kept.changed and "scoring" not in (session.settings or {})
    change = set_scoring_settings(db, session=session, purpose=" Position ", jpm_cap=None,
                                  actor="t", now=clock.now())
    assert change.changed and change.stale_results == 0  # nobody has a result yet
    assert session.settings["scoring"] == {"purpose": "placement", "jpm_cap": True}
    assert stale_results(db, session) == 0
    # other scoring settings are kept; a broken one refuses the change
    session.settings = {"scoring": {"purpose": "mapping", "category_basis": "combined"},
                        "seb_config_key": "k"}
    set_scoring_settings(db, session=session, purpose=None, jpm_cap="OFF", actor="t",
                         now=clock.now())
    assert session.settings == {"scoring": {"purpose": "mapping", "jpm_cap": False,
                                            "category_basis": "combined"},
                                "seb_config_key": "k"}
    session.settings = {"scoring": {"category_basis": "nonsense"}}
    with pytest.raises(SessionError, match="nothing was saved"):
        set_scoring_settings(db, session=session, purpose="position", jpm_cap=None,
                             actor="t", now=clock.now())
    assert session.settings == {"scoring": {"category_basis": "nonsense"}}
