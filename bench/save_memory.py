"""Where a server's memory goes as saves pile up, in one process: the soak (bench/soak.py) shows
the resident memory of a SQLite server growing slowly and a PostgreSQL one flat; this tells
whether the growth is held by the app's Python objects, by SQLite, or by neither.

    .venv/bin/python bench/save_memory.py --saves 80000
    .venv/bin/python bench/save_memory.py --saves 30000 --tracemalloc

Builds bench/autosave.py's exam (sample banks, the half-day blueprint of 112 items per form,
an open session) in a temporary SQLite database, logs --takers in and fetches their forms
through the app in this process (httpx's ASGI transport: no sockets, no uvicorn), then sends
--saves answer changes (bench/autosave.py's send_save, at most --concurrency at once). Every
--every saves it prints:

- the memory Python's allocations hold (tracemalloc; only with --tracemalloc, which makes the
  run about twice as slow);
- SQLite's own heap (``sqlite3_memory_used`` of the process's libsqlite3: page caches,
  prepared statements, schemas);
- the process's anonymous resident memory (RssAnon of /proc/self/status).

When the first two stay level while the third grows, the growth is memory the C allocator
keeps after it was freed, not something the app or SQLite holds on to.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import random
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import autosave  # noqa: E402 - the bench next to this one builds the same exam
import httpx2 as httpx  # noqa: E402


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sqlite_heap() -> ctypes._CFuncPtr | None:
    """``sqlite3_memory_used`` of the libsqlite3 the sqlite3 module is linked to (None when
    the library cannot be found, e.g. a Python with SQLite built in)."""
    name = ctypes.util.find_library("sqlite3")
    if not name:
        return None
    used = ctypes.CDLL(name).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return used


async def run(app, logins, args) -> None:
    heap = sqlite_heap()
    log = autosave.SaveLog()
    rng = random.Random(5)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cact") as client:
            takers = []
            for n, (nip, token) in enumerate(logins):
                login = await client.post("/api/v1/taker/login", json={
                    "nip": nip, "token": token, "workstation": f"PC-{n}"})
                login.raise_for_status()
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                form = await client.get("/api/v1/taker/attempt", headers=headers)
                form.raise_for_status()
                items = [(i["item_id"], [o["id"] for o in i["options"]], i["kind"])
                         for i in form.json()["items"] if i["stem"] is not None]
                takers.append({"headers": headers, "items": items, "seq": 0,
                               "attempt_id": login.json()["attempt_id"]})
            slots = asyncio.Semaphore(args.concurrency)

            async def one() -> None:
                async with slots:
                    await autosave.send_save(client, takers[rng.randrange(len(takers))], rng,
                                             log)

            print(f"{'saves':>8} {'python MiB':>11} {'sqlite MiB':>11} {'RssAnon MiB':>12}")
            done = 0
            while done < args.saves:
                batch = min(args.every, args.saves - done)
                await asyncio.gather(*(one() for _ in range(batch)))
                done += batch
                log.latencies.clear()  # the client's own record would grow by 32 bytes a save
                gc.collect()
                traced = (f"{tracemalloc.get_traced_memory()[0] / 2**20:11.1f}"
                          if tracemalloc.is_tracing() else f"{'-':>11}")
                sqlite = f"{heap() / 2**20:11.2f}" if heap else f"{'n/a':>11}"
                print(f"{done:8d} {traced} {sqlite} {rss_anon_mib():12.1f}", flush=True)
    if log.errors:
        print(f"errors: {dict(log.errors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=300)
    parser.add_argument("--saves", type=int, default=80000)
    parser.add_argument("--every", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python's allocations (slower)")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="cact-save-memory-")
    logins = autosave.setup({"CACT_DATA_DIR": data_dir, "CACT_SECRET_KEY": "b" * 48,
                             "CACT_DATABASE_URL": ""}, args.takers)
    from app.main import create_app
    from app.settings import get_settings

    if args.tracemalloc:
        tracemalloc.start()
    try:
        asyncio.run(run(create_app(get_settings()), logins, args))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
