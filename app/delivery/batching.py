"""Group commit for autosaves.

Every save must be durable before it is acknowledged, and on SQLite durable means one fsync of
the write-ahead log per commit, behind the single write slot. When hundreds of takers save at
once, each waiting for its own commit, the slot and the fsyncs are the bottleneck. Saves that
arrive together are therefore applied in one transaction, each in its own savepoint, and all
of them are acknowledged after that one commit: still nothing is acknowledged before it is on
disk, and a save that fails is refused alone without touching the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db import Database

logger = logging.getLogger("cact")
MAX_BATCH = 64

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
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future]] | None = None
        self._runner: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, work: Work) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests start several): start afresh
            self._loop, self._queue, self._runner = loop, asyncio.Queue(), None
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        future: asyncio.Future = loop.create_future()
        self._queue.put_nowait((work, future))
        return await future

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self.database.write_gate(True):
                    outcomes = await run_in_threadpool(self._apply, [w for w, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the commit failed: nobody is acknowledged
                logger.warning("autosave batch of %d not committed: %s", len(batch), exc)
                outcomes = [(False, self._refusal(exc))] * len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
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

    def recent_failure(self, within_s: float = 120.0) -> str | None:
        """The last storage failure of this process, if it happened within ``within_s``."""
        if self.last_failure and time.monotonic() - self.last_failure[0] <= within_s:
            return self.last_failure[1]
        return None

    def _apply(self, works: list[Work]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with self.database.transaction() as db:
            for work in works:
                savepoint = db.begin_nested()
                try:
                    value = work(db)
                    savepoint.commit()
                    outcomes.append((True, value))
                except Exception as exc:  # noqa: BLE001 - refused alone, the rest go on
                    savepoint.rollback()
                    outcomes.append((False, self._refusal(exc)))
        self.commits += 1
        self.saves += len(works)
        return outcomes
