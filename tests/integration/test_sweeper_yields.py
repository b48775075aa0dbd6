"""The sweeper's scoring gives way to takers: while they save or hand in, one scoring
transaction per run; when they are quiet, everything pending at once. At the end of a session
thousands of hand-ins arrive within seconds and must not wait behind scoring."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from app.delivery import attempts, timing
from app.main import score_pending_now
from app.scoring.models import Result
from app.scoring.service import PENDING_BATCH
from tests.factories import make_open_session


def test_scoring_takes_one_batch_while_takers_are_busy_and_the_rest_when_quiet(
        app, database, settings, clock):
    secret = settings.resolved_secret()
    takers = PENDING_BATCH + 5
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=secret, participants=takers)
        for n, (nip, token) in enumerate(logins):
            attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{n}",
                                     client_addr="10.0.0.1", secret=secret,
                                     now=clock.now()).attempt
            timing.start(db, attempt=attempt, now=clock.now())
            timing.submit(db, attempt=attempt, reason="taker", actor="test", now=clock.now(),
                          score=False)

    def results() -> int:
        with database.transaction(write=False) as db:
            return db.scalar(select(func.count()).select_from(Result))

    batcher = app.state.save_batcher
    batcher.last_submit = time.monotonic() + 3600  # takers at work (a save just came in)
    assert score_pending_now(app, yield_to_takers=True) == PENDING_BATCH
    assert results() == PENDING_BATCH
    batcher.last_submit = float("-inf")  # quiet
    assert score_pending_now(app, yield_to_takers=True) == 5
    assert results() == takers
