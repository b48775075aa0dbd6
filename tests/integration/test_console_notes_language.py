"""What the server notes on a participant (a login refused at a second PC, failed saves) reads in
the proctor's language on the console, the live fragment and the participant's panel, with
no English left on the Indonesian pages; the rows that need attention come first. Real SQLite
and PostgreSQL."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from app.delivery import attempts, saving
from app.sessions.models import Participant, RosterEntry
from tests.factories import make_open_session

ENGLISH = ("held by", "failed save tries", "got through")


@pytest.fixture
def noted(database, settings, clock):
    """S1 with three takers: the last one in name order saved with trouble and was refused at a
    second PC (through the taker side's services)."""
    secret = settings.resolved_secret()
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=secret, participants=3)
        nip, token = logins[2]
        attempt = attempts.login(db, nip=nip, token=token, workstation="PC-03",
                                 client_addr="10.0.0.3", secret=secret, now=clock.now()).attempt
        saving.record_save_failures(db, attempt_id=attempt.id, failures=14, now=clock.now())
    with database.transaction() as db, pytest.raises(attempts.TakerError):
        # refused; the transaction still commits the note for the console (raises is inside)
        attempts.login(db, nip=nip, token=token, workstation="seat-9a8b7c",
                       client_addr="10.0.0.9", secret=secret, now=clock.now())
    with database.transaction(write=False) as db:
        entry = db.scalar(select(RosterEntry.id).join(Participant).where(Participant.nip == nip))
    return nip, entry


def test_server_notes_read_in_indonesian_and_in_english(admin, noted):
    nip, entry = noted
    for path in ("/proctor/sessions/S1", "/proctor/sessions/S1/grid",
                 f"/proctor/sessions/S1/peserta/{entry}"):
        page = html.unescape(admin.get(path).text)
        assert "14 kali gagal menyimpan sebelum berhasil tersimpan" in page, path
        assert "Mencoba masuk dari seat-9a8b7c; ujian masih terkunci di PC-03" in page, path
        for words in ENGLISH:
            assert words not in page, (path, words)
    admin.cookies.set("cact_lang", "en")
    page = html.unescape(admin.get(f"/proctor/sessions/S1/peserta/{entry}").text)
    assert "14 failed save tries before a save got through" in page
    assert "Tried to log in from seat-9a8b7c; the test is still held by PC-03" in page


def test_rows_that_need_attention_come_first(admin, noted):
    nip, _ = noted
    page = admin.get("/proctor/sessions/S1/grid").text
    rows = [line for line in page.splitlines() if 'data-testid="seat-' in line]
    assert f'data-testid="seat-{nip}"' in rows[0] and "needs-attention" in rows[0]
    assert all("needs-attention" not in row for row in rows[1:])
    # one badge per kind, in the line under the name
    assert page.count('data-testid="attention-seat_refused"') == 1
    assert page.count('data-testid="attention-save_failures"') == 1
