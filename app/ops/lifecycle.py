"""What the operations domain does when a worker starts, and the background loops it runs
beside the sweeper."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool


async def startup(app: FastAPI) -> None:
    """Runs in every worker before the sweeper starts: an outage is credited to the takers
    before anything can close their attempts for time."""
    from app.ops import outage

    await run_in_threadpool(outage.on_start, app)


def background(app: FastAPI) -> list[Coroutine[Any, Any, None]]:
    """Loops that run for the life of the worker (cancelled at shutdown)."""
    from app.ops import backup, outage

    return [outage.heartbeat_loop(app), backup.auto_backup_loop(app)]
