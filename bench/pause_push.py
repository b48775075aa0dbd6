"""What it costs the server to push a pause to every taker's page within a second or two.

    .venv/bin/python bench/pause_push.py --takers 2000 --idle-seconds 30

1. Builds the database of bench/autosave.py (sample banks, the half-day blueprint, one open
   session of N participants), starts `cact serve`, logs every taker in and starts the clock.
2. Opens every taker's event stream (`GET /ujian/peristiwa`, the page's EventSource) and waits
   for its first event: how long it takes a whole room to connect.
3. Idle: all N streams open, nothing happens, for --idle-seconds: the server's CPU time.
4. Pauses the whole session (as the proctor's button does, in its own transaction) and measures,
   per page, the time until its stream says "paused"; then the same for the resume.
5. The alternative it replaces: every page polling `/ujian/status` once a second. Sends status
   requests as fast as --concurrency connections allow for a few seconds and reports the CPU
   time one request costs, so the cost of N pages polling every second can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import autosave  # noqa: E402 - the bench next to this one: database, server, percentiles


class Page:
    """One taker's event stream over a raw socket (2,000 of them in one process)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.events: list[tuple[float, dict]] = []
        self.first = asyncio.Event()
        self.changed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        self.writer = writer
        writer.write((f"GET /ujian/peristiwa HTTP/1.1\r\nHost: {host}\r\n"
                      f"Accept: text/event-stream\r\nCookie: cact_taker={self.token}\r\n\r\n"
                      ).encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                # chunked transfer: the event's data line arrives whole on its own line
                self.events.append((time.perf_counter(), json.loads(line[6:])))
                self.first.set()
                self.changed.set()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def change_session(action: str) -> float:
    """Pause or resume every running attempt (what the proctor's session button does)."""
    from sqlalchemy import select

    from app.clock import SystemClock
    from app.db import Database
    from app.proctoring.service import pause_all, resume_all
    from app.sessions.models import TestSession
    from app.settings import get_settings

    database = Database(get_settings().database_url)
    with database.transaction() as db:
        session = db.scalars(select(TestSession).where(TestSession.code == "BENCH")).one()
        act = pause_all if action == "pause" else resume_all
        count = act(db, session=session, actor="bench", now=SystemClock().now())
    committed = time.perf_counter()
    database.dispose()
    print(f"  {action}: {count} attempts changed in one transaction")
    return committed


async def until_state(pages: list[Page], state: str, since: float, timeout: float) -> list[float]:
    async def one(page: Page) -> float | None:
        deadline = time.perf_counter() + timeout
        while True:
            for at, event in page.events:
                if event.get("state") == state and at >= since:
                    return at - since
            page.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(page.changed.wait(), left)
            except TimeoutError:
                return None
    found = await asyncio.gather(*(one(p) for p in pages))
    return [f for f in found if f is not None]


async def streams_phase(base: str, server_pid: int, tokens: list[str], idle: float) -> None:
    host, port = base.split("//")[1].split(":")
    pages = [Page(t) for t in tokens]
    random.shuffle(pages)
    t0 = time.perf_counter()
    tasks = []
    for page in pages:  # a room connecting over a second or so, not in one instant
        tasks.append(asyncio.create_task(page.run(host, int(port))))
        await asyncio.sleep(0.0005)
    await asyncio.wait_for(asyncio.gather(*(p.first.wait() for p in pages)), 300)
    print(f"streams: {len(pages)} open and told their state in "
          f"{time.perf_counter() - t0:.1f} s")

    cpu0, _ = autosave.server_usage(server_pid)
    await asyncio.sleep(idle)
    cpu1, peak = autosave.server_usage(server_pid)
    print(f"idle with {len(pages)} streams open for {idle:g} s: server CPU "
          f"{cpu1 - cpu0:.2f} s ({(cpu1 - cpu0) / idle * 100:.1f} % of one core), "
          f"peak memory {peak / 1024:.0f} MiB")

    for action, state in (("pause", "paused"), ("resume", "active")):
        cpu0, _ = autosave.server_usage(server_pid)
        since = await asyncio.to_thread(change_session, action)
        delays = await until_state(pages, state, since, timeout=30)
        cpu1, _ = autosave.server_usage(server_pid)
        print(f"  {action} reached {len(delays)}/{len(pages)} pages: "
              f"{autosave.percentiles(delays)}; "
              f"server CPU {cpu1 - cpu0:.2f} s")
    for page in pages:
        page.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def polling_phase(base: str, tokens: list[str], seconds: float, concurrency: int,
                        server_pid: int) -> None:
    """The alternative: status polls as fast as the server answers them."""
    done = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker(n: int) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                token = tokens[(n * 7919 + done) % len(tokens)]
                r = await client.get("/ujian/status", cookies={"cact_taker": token})
                if r.status_code == 200:
                    done += 1
        cpu0, _ = autosave.server_usage(server_pid)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - t0
        cpu1, _ = autosave.server_usage(server_pid)
    per = (cpu1 - cpu0) / max(done, 1)
    print(f"status polls instead: {done} in {elapsed:.1f} s = {done / elapsed:.0f}/s, "
          f"{per * 1000:.2f} ms server CPU each; {len(tokens)} pages polling every second "
          f"would need {per * len(tokens):.2f} CPU seconds per second "
          f"({per * len(tokens) * 100:.0f} % of one core)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=2000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="cact-pause-"))
    env = {"CACT_DATA_DIR": str(data_dir), "CACT_SECRET_KEY": "b" * 48, "CACT_DATABASE_URL": ""}
    t0 = time.perf_counter()
    logins = autosave.setup(env, args.takers)
    print(f"setup: {args.takers} participants in {time.perf_counter() - t0:.1f} s (SQLite, "
          f"{args.workers} worker(s))")
    port = autosave.free_port()
    server = autosave.start_server([sys.executable, "-m", "app.cli", "serve", "--port",
                                    str(port), "--workers", str(args.workers)], env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        takers, elapsed, _, errors = asyncio.run(
            autosave.start_phase(base, logins, args.concurrency, 0))
        print(f"start: {len(takers)} logged in and started in {elapsed:.1f} s; "
              f"errors {dict(errors)}")
        tokens = [t["headers"]["Authorization"].split()[1] for t in takers]
        asyncio.run(streams_phase(base, server.pid, tokens, args.idle_seconds))
        asyncio.run(polling_phase(base, tokens, args.poll_seconds, args.concurrency,
                                  server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
