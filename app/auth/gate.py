"""The request side of logins, shared by the staff login page and the taker logins.

A login must never slow the exam down, whoever sends it and however many:

* the throttle and the account are read in a read-only transaction;
* the password (argon2, ~0.2 s of CPU) is verified with no transaction open, and at most
  ``PASSWORD_CHECKS_IN_FLIGHT`` at once per process, so a burst of staff logins leaves the other
  core to the takers;
* a failure's throttle count and audit row go through the autosave group commit (one commit
  for many) instead of a write transaction of their own;
* a refusal by the throttle writes nothing: it is tallied in memory and written as one audit
  row per identifier and minute (:func:`refusal_audit_loop`); for two seconds after the
  database said "locked", the same identifier and address are refused from memory
  (:class:`LockCache`), so a flood of refused attempts costs no database read either. A lock
  cleared by staff therefore holds at most two seconds longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth import throttle
from app.db import in_transaction

logger = logging.getLogger("cact")
PASSWORD_CHECKS_IN_FLIGHT = 1
FLUSH_EVERY_S = 15
LOCK_CACHE_S = 2.0
LOCK_CACHE_ENTRIES = 10_000


class LockCache:
    """Locks the database reported in the last ``LOCK_CACHE_S`` seconds, per (identifier,
    address): the end of the lock (wall clock, the app's clock) and when it was read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[datetime, float]] = {}

    def wait_s(self, identifier: str, client_addr: str, now: datetime) -> int:
        with self._lock:
            entry = self._entries.get((identifier, client_addr))
        if entry is None or time.monotonic() - entry[1] > LOCK_CACHE_S:
            return 0
        return throttle.seconds_left(entry[0], now)

    def put(self, identifier: str, client_addr: str, now: datetime, wait_s: int) -> None:
        with self._lock:
            if len(self._entries) >= LOCK_CACHE_ENTRIES:
                self._entries.clear()  # a flood of addresses: start over, the database knows
            self._entries[(identifier, client_addr)] = (now + timedelta(seconds=wait_s),
                                                        time.monotonic())

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()


def install(app: FastAPI) -> None:
    """The process's lock cache and refusal tally (``create_app`` calls this)."""
    app.state.login_locks = LockCache()
    app.state.login_refusals = throttle.RefusalTally()


def lock_cache(app: FastAPI) -> LockCache:
    return app.state.login_locks


def note_refusal(request: Request, *, action: str, identifier: str, client_addr: str,
                 wait_s: int) -> None:
    request.app.state.login_refusals.note(action=action, identifier=identifier,
                                          client_addr=client_addr, wait_s=wait_s,
                                          now=request.app.state.clock.now())


@contextlib.asynccontextmanager
async def password_slot(app: FastAPI) -> AsyncIterator[None]:
    """Wait (without holding a thread) for one of the process's password-check slots. One
    semaphore per event loop: tests run several loops against one app."""
    loop = asyncio.get_running_loop()
    slots = getattr(app.state, "password_slots", None)
    if slots is None or slots[0] is not loop:
        slots = app.state.password_slots = (loop, asyncio.Semaphore(PASSWORD_CHECKS_IN_FLIGHT))
    async with slots[1]:
        yield


class Throttled(Exception):
    """The login was refused by the throttle: wait ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"wait {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ThrottleCheck(Protocol):
    retry_after_s: int


C = TypeVar("C", bound=ThrottleCheck)


async def read_past_throttle(request: Request, *, action: str, identifier: str,
                             client_addr: str, read: Callable[[Session], C],
                             cacheable: bool = True) -> C:
    """The read phase of a login: ``read`` (which checks the throttle) in a read-only
    transaction, unless the lock cache already knows this identifier and address are locked.
    A refusal is tallied (``action``) and raised as Throttled. ``cacheable`` False: always ask
    the database (a seat's own login, counted under the seat instead of the address)."""
    locks: LockCache = request.app.state.login_locks
    now = request.app.state.clock.now()
    wait = locks.wait_s(identifier, client_addr, now) if cacheable else 0
    if not wait:
        check = await in_transaction(request, read, write=False)
        if not check.retry_after_s:
            return check
        wait = check.retry_after_s
        if cacheable:
            locks.put(identifier, client_addr, now, wait)
    note_refusal(request, action=action, identifier=identifier, client_addr=client_addr,
                 wait_s=wait)
    raise Throttled(wait)


async def in_password_slot(app: FastAPI, fn: Callable[..., Any], *args: Any) -> Any:
    async with password_slot(app):
        return await run_in_threadpool(fn, *args)


async def record(request: Request, work: Callable[[Session], Any]) -> Any:
    """Run ``work`` in the next group commit; returns once it is on disk."""
    return await request.app.state.save_batcher.submit(work)


async def flush_refusals(app: FastAPI, *, everything: bool = False) -> int:
    """Write the tallied refusals whose minute is over (or all of them): one audit row per
    identifier and window. Returns how many windows were written."""
    refusals: throttle.RefusalTally = app.state.login_refusals
    now = app.state.clock.now()
    taken = refusals.take_due(now, everything=everything)
    if not taken:
        return 0
    try:
        await app.state.save_batcher.submit(
            lambda db: throttle.write(db, taken, now=now))
    except Exception:
        refusals.put_back(taken)  # kept for the next try; the tally is only in memory
        raise
    return len(taken)


async def refusal_audit_loop(app: FastAPI) -> None:
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        try:
            await flush_refusals(app)
        except Exception:  # noqa: BLE001 - a busy database: the windows wait for the next run
            logger.warning("throttled logins not yet written to the audit log; trying again")
