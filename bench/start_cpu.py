"""CPU time per taker of the 08:00 start (login + form) through the whole app, in one process.

    .venv/bin/python bench/start_cpu.py --takers 1000

Builds bench/autosave.py's exam (sample banks, the half-day blueprint of 112 items per form,
an open, prepared session) in a temporary SQLite database, then logs every taker in and
fetches the form through the ASGI app (httpx's ASGI transport: no sockets, no uvicorn), at
most --concurrency at once, and prints the process's CPU time and the wall time per taker.
The client's own share (about a third) is included, so the figure compares versions of the
server code with each other, quickly and with less noise than the full load test
(bench/autosave.py), whose single runs here vary by several seconds; it says nothing of the
network, uvicorn or nginx. Run it twice and take the lower figure.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import autosave  # noqa: E402 - the bench next to this one builds the same exam
import httpx2 as httpx  # noqa: E402


async def run(app, logins, concurrency: int) -> tuple[float, float]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cact") as client:
            slots = asyncio.Semaphore(concurrency)

            async def one(n: int, nip: str, token: str) -> None:
                async with slots:
                    login = await client.post("/api/v1/taker/login", json={
                        "nip": nip, "token": token, "workstation": f"PC-{n}"})
                    login.raise_for_status()
                    form = await client.get("/api/v1/taker/attempt", headers={
                        "Authorization": f"Bearer {login.json()['access_token']}"})
                    form.raise_for_status()

            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(n, nip, token) for n, (nip, token) in enumerate(logins)))
            return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="cact-start-cpu-")
    logins = autosave.setup({"CACT_DATA_DIR": data_dir, "CACT_SECRET_KEY": "b" * 48,
                             "CACT_DATABASE_URL": ""}, args.takers)
    from app.main import create_app
    from app.settings import get_settings

    try:
        cpu, wall = asyncio.run(run(create_app(get_settings()), logins, args.concurrency))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"login + form, {args.takers} takers in one process: CPU {1000 * cpu / args.takers:.2f}"
          f" ms per taker, wall {1000 * wall / args.takers:.2f} ms per taker")


if __name__ == "__main__":
    main()
