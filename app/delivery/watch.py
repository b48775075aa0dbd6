"""A proctor's pause (and resume, extra time, a section closed by the server) reaches the
taker's page within about a second, through one server-sent event stream per page.

The pages do not each ask the database: one watcher per worker process (:class:`Watch`, on
``app.state``) keeps the attempts whose pages listen, and while any page listens it reads, once
a second and in one query, the state and deadlines of every attempt of their sessions. Only a
page whose attempt changed hears of it; the others cost nothing but an idle connection and a
keep-alive line every 20 s. 2,000 listening takers are one query a second per worker instead of
2,000 status requests (``bench/pause_push.py``, docs/performance.md). The page still polls
``/ujian/status`` every 10 s (its heartbeat for the console), and faster while its stream is
down.

Nothing here writes, and nothing is kept that the database does not also hold: every worker
watches the same rows, so a pause made through one worker reaches pages connected to another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.delivery.models import Attempt, AttemptSection

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often the watcher reads, while any page listens
KEEPALIVE_S = 20.0  # an idle stream says something this often (proxies, dead peers)
STREAM_MAX_S = 300.0  # a stream ends after this; the page reconnects through the login check

Mark = tuple[Any, ...]


def _seconds_left(deadlines: Iterable[datetime | None], reference: datetime) -> int | None:
    found = [d for d in deadlines if d]
    if not found:
        return None
    return max(0, int((min(found) - reference).total_seconds() + 0.999))


def _page_state(row: Any, now: datetime) -> tuple[Mark, dict[str, Any]]:
    """What a page needs (as ``/ujian/status`` says it) and the mark that says it changed:
    the state, the section and the deadlines, not the seconds left, which change every
    second without anything having happened."""
    reference = row.paused_at or now
    state = row.state.value if hasattr(row.state, "value") else str(row.state)
    mark = (state, row.current_section, row.deadline_at, row.section_deadline, row.paused_at)
    return mark, {
        "state": state, "current_section": row.current_section,
        "remaining_s": _seconds_left((row.deadline_at, row.section_deadline), reference),
        "test_remaining_s": _seconds_left((row.deadline_at,), reference),
        "server_time": now.isoformat()}


def _rows(db: Session, *, where: Any) -> Any:
    return db.execute(
        select(Attempt.id, Attempt.state, Attempt.current_section, Attempt.deadline_at,
               Attempt.paused_at, AttemptSection.deadline_at.label("section_deadline"))
        .outerjoin(AttemptSection, (AttemptSection.attempt_id == Attempt.id)
                   & (AttemptSection.section == Attempt.current_section))
        .where(where))


def states_of_sessions(db: Session, session_ids: Iterable[int], now: datetime
                       ) -> dict[int, tuple[Mark, dict[str, Any]]]:
    """Every attempt of these sessions: its mark and what its page is told (one query)."""
    ids = sorted(set(session_ids))
    if not ids:
        return {}
    return {row.id: _page_state(row, now)
            for row in _rows(db, where=Attempt.session_id.in_(ids))}


def state_of(db: Session, attempt_id: int, now: datetime) -> tuple[Mark, dict[str, Any]]:
    row = _rows(db, where=Attempt.id == attempt_id).one()
    return _page_state(row, now)


@dataclass
class Watch:
    """The process's listening pages and the loop that reads for them. Lives on the event
    loop: subscribe and unsubscribe are called from request handlers, the reads run in a
    worker thread."""

    database: Any
    clock: Any
    tick_s: float = TICK_S
    pages: dict[int, list[asyncio.Queue[dict[str, Any]]]] = field(default_factory=dict)
    sessions: dict[int, int] = field(default_factory=dict)  # attempt -> its session
    seen: dict[int, Mark] = field(default_factory=dict)
    reads: int = 0  # queries run so far (the bench reads it)
    _task: asyncio.Task[None] | None = None

    def subscribe(self, attempt_id: int, session_id: int, mark: Mark
                  ) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pages.setdefault(attempt_id, []).append(queue)
        self.sessions[attempt_id] = session_id
        self.seen.setdefault(attempt_id, mark)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unsubscribe(self, attempt_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self.pages.get(attempt_id, [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self.pages.pop(attempt_id, None)
            self.sessions.pop(attempt_id, None)
            self.seen.pop(attempt_id, None)

    def read(self, session_ids: set[int]) -> dict[int, tuple[Mark, dict[str, Any]]]:
        """The state of every attempt in these sessions, in one query."""
        with self.database.transaction(write=False) as db:
            return states_of_sessions(db, session_ids, self.clock.now())

    def notify(self, states: dict[int, tuple[Mark, dict[str, Any]]]) -> int:
        """Tell the pages whose attempt changed; returns how many pages were told."""
        told = 0
        for attempt_id, queues in list(self.pages.items()):
            found = states.get(attempt_id)
            if found is None or self.seen.get(attempt_id) == found[0]:
                continue
            self.seen[attempt_id] = found[0]
            for queue in queues:
                queue.put_nowait(found[1])
                told += 1
        return told

    async def _run(self) -> None:
        while self.pages:
            await asyncio.sleep(self.tick_s)
            if not self.pages:
                break
            try:
                states = await run_in_threadpool(self.read, set(self.sessions.values()))
            except Exception:  # a database away for a moment: the pages poll meanwhile
                log.warning("attempt watch: read failed", exc_info=True)
                continue
            self.reads += 1
            self.notify(states)


def watch_of(app: Any) -> Watch:
    """The process's watcher, made on first use."""
    found = getattr(app.state, "attempt_watch", None)
    if found is None:
        found = Watch(app.state.db, app.state.clock)
        app.state.attempt_watch = found
    return found


def sse(payload: dict[str, Any]) -> str:
    import json

    return f"event: status\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"
