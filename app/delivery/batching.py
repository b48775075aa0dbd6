"""Group commit for autosaves, hand-ins and taker logins.

Every save must be durable before it is acknowledged, and on SQLite durable means one fsync of
the write-ahead log per commit, behind the single write slot. When hundreds of takers save at
once, each waiting for its own commit, the slot and the fsyncs are the bottleneck. Saves that
arrive together are therefore applied in one transaction, each in its own savepoint, and all
of them are acknowledged after that one commit: still nothing is acknowledged before it is on
disk, and a save that fails is refused alone without touching the others. A room's logins at
08:00 go the same way (app/delivery/login_flow.py): their audit rows are appended to the chain
one after another in the batch's transaction, in the order the batch runs them, so the chain
stays exact (``cact audit verify``); a refused login that recorded why (RecordedRefusal) keeps
what it recorded, as its own transaction would have.

With several app workers on PostgreSQL, two workers' batches can hold row locks on the same
attempts (a taker's saves may reach either worker). Each batch takes its works in the order of
their key (the taker's access token), so two batches lock attempts in the same order; what can
still cross (a hand-in's audit lock, the sweeper) ends in a deadlock that PostgreSQL breaks by
failing one transaction, and that batch is then run again as a whole, never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db import Database, RecordedRefusal

logger = logging.getLogger("cact")
MAX_BATCH = 64
CONFLICT_RETRIES = 5
_CONFLICTS = {"40P01", "40001"}  # deadlock detected, serialization failure


class _Conflict(Exception):
    """A work hit a deadlock: the whole transaction must be rolled back and run again."""

Work = Callable[[Session], Any]


class SaveBatcher:
    """One per process. ``submit(work)`` resolves once the transaction holding ``work``
    committed, with what ``work`` returned (or raises what it raised)."""

    def __init__(self, database: Database, max_batch: int = MAX_BATCH) -> None:
        self.database = database
        self.max_batch = max_batch
        self.commits = 0  # how many transactions were needed (for tests and benchmarks)
        self.saves = 0
        self.last_failure: tuple[float, str] | None = None
        self.conflicts = 0  # batches run again after a deadlock
        self.last_submit = float("-inf")  # time.monotonic() of the last work submitted
        self._queue: asyncio.Queue[tuple[str, Work, asyncio.Future]] | None = None
        self._runner: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, work: Work, key: str = "") -> Any:
        """``key`` orders the works of a batch (the taker's access token: rows of the same
        attempt are then locked in the same order by every worker's batches)."""
        self.last_submit = time.monotonic()
        loop = asyncio.get_running_loop()
        queue = self._queue
        if self._loop is not loop or queue is None:  # a new event loop (tests start several)
            queue = asyncio.Queue()
            self._loop, self._queue, self._runner = loop, queue, None
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        future: asyncio.Future = loop.create_future()
        queue.put_nowait((key, work, future))
        return await future

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        if self._queue is None:
            raise RuntimeError("no queue: _run is started by submit()")
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch.sort(key=lambda entry: entry[0])
            try:
                async with self.database.write_gate(True):
                    outcomes = await run_in_threadpool(self._apply, [w for _, w, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the commit failed: nobody is acknowledged
                logger.warning("autosave batch of %d not committed: %s", len(batch), exc)
                outcomes = [(False, self._refusal(exc))] * len(batch)
            for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # the request went away (client disconnected)
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _refusal(self, exc: Exception) -> Exception:
        """A database that cannot store (locked past the busy timeout, disk full, gone) is
        a 503 the page understands: it keeps the answer in its journal, says so, and sends
        it again. The time and reason are kept for the proctor console's alert line."""
        if isinstance(exc, DBAPIError):
            self.last_failure = (time.monotonic(), str(exc.orig or exc).splitlines()[0][:200])
            from app.delivery.attempts import TakerError

            return TakerError(503, "taker.error_storage",
                              "the server could not store answers just now; the page keeps "
                              "them and sends them again", retry_after=2)
        return exc

    def busy(self, within_s: float = 1.0) -> bool:
        """Whether takers are saving, logging in or handing in now (a work came in within
        ``within_s``): background work (the sweeper's scoring) then leaves them the server."""
        return time.monotonic() - self.last_submit <= within_s

    def recent_failure(self, within_s: float = 120.0) -> str | None:
        """The last storage failure of this process, if it happened within ``within_s``."""
        if self.last_failure and time.monotonic() - self.last_failure[0] <= within_s:
            return self.last_failure[1]
        return None

    def _apply(self, works: list[Work]) -> list[tuple[bool, Any]]:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self._apply_once(works)
            except _Conflict as conflict:
                self.conflicts += 1
                if attempt == CONFLICT_RETRIES - 1:
                    raise (conflict.__cause__ or conflict) from None
                logger.info("autosave batch of %d ran into a deadlock; running it again",
                            len(works))
                time.sleep(random.uniform(0.001, 0.02 * (attempt + 1)))  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    def _apply_once(self, works: list[Work]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with self.database.transaction() as db:
            for work in works:
                savepoint = db.begin_nested()
                try:
                    value = work(db)
                    savepoint.commit()
                    outcomes.append((True, value))
                except RecordedRefusal as refusal:
                    # Refused, but what it wrote of why (a failed login's count and audit
                    # row) is kept, as a transaction of its own would commit it.
                    savepoint.commit()
                    outcomes.append((False, refusal))
                except Exception as exc:  # refused alone, the rest go on
                    try:
                        savepoint.rollback()
                    except DBAPIError:
                        # SQLite rolled the whole transaction back itself (SQLITE_FULL: the
                        # disk is full), so the savepoint is gone: the batch fails, and with
                        # the real reason, which the proctor console shows.
                        raise exc from None
                    if _is_conflict(exc):
                        # Rolling back the savepoint keeps the locks of the works before it,
                        # so trying this work again could deadlock again: start over.
                        raise _Conflict from exc
                    outcomes.append((False, self._refusal(exc)))
        self.commits += 1
        self.saves += len(works)
        return outcomes


def _is_conflict(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in _CONFLICTS
