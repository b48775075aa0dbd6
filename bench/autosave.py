"""Autosave and session start under load, against a real server, compared with a bare endpoint.

    .venv/bin/python bench/autosave.py --takers 2000 --saves 20000 --concurrency 200
    .venv/bin/python bench/autosave.py --workers 2 \\
        --db postgresql+psycopg://postgres@127.0.0.1/cactbench

1. Builds a database with the sample banks, the half-day blueprint (112 items per form) and an
   open session with N participants.
2. Starts `cact serve` (production settings) and logs every taker in and fetches their form,
   all at once (bounded by --concurrency connections), or at random moments within
   --start-window seconds: the start-of-session time (first login to last form delivered).
3. Sends autosaves as fast as --concurrency connections allow (closed loop: the capacity),
   with 5 % duplicates and 5 % out-of-order older saves injected; every acknowledgement is
   recorded.
4. Then the exam as it is sat (--paced-seconds, default 60): every taker changes an answer
   after a random think time (mean --think seconds, default 10); its latency is what a taker
   waits for "tersimpan".
5. Everyone submits; the server's CPU time and peak memory are printed.
6. Compares the database with the acknowledgements: an answer whose stored seq is lower than
   an acknowledged one is lost or regressed (must be 0).
7. Serves bench/bare_app.py (one SQLite row per request, same uvicorn) and drives the same
   number of requests at the same concurrency: the reference throughput.
8. Has the same app return a real form's JSON (kept from step 2), stored, to as many takers
   at the same concurrency: the physical limit of delivering a form here. The start's rate
   (login + form per taker) is reported as a share of it.
9. Runs step 2's client against the same app's do-nothing login and the stored form: the
   start's two requests with no work behind them, the ceiling of any start here. The start's
   rate is reported as a share of that too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def import_samples(db, now):
    """The sample banks and the half-day blueprint (112 items in three sections)."""
    from app.assembly.service import import_blueprint
    from app.bank.reading import ImportOptions, read_path
    from app.bank.service import import_bank

    samples = ROOT / "itembank" / "samples"
    for folder in ("potensi", "kompetensi"):
        import_bank(db, read_path(samples / folder), source=folder, options=ImportOptions(),
                    actor="bench", actor_id=None, now=now)
    return import_blueprint(db, (samples / "cact-setengah-hari.blueprint.yaml").read_text(),
                            source="bp", actor="bench", now=now)


def setup(env: dict[str, str], takers: int) -> list[tuple[str, str]]:
    """Database with sample banks, blueprint and an open session of N participants."""
    os.environ.update(env)
    from sqlalchemy import select

    from app.auth.security import decrypt_token
    from app.clock import SystemClock
    from app.db import Database, upgrade
    from app.sessions.models import Participant, RosterEntry
    from app.sessions.roster import RosterRow, import_roster
    from app.sessions.service import change_state, create_session
    from app.settings import get_settings

    settings = get_settings()
    upgrade(settings.database_url)
    database = Database(settings.database_url)
    secret = settings.resolved_secret()
    now = SystemClock().now()
    logins = []
    with database.transaction() as db:
        blueprint = import_samples(db, now)
        session = create_session(db, code="BENCH", name="Bench", room="",
                                 blueprint_code=blueprint.code, starts_at=now,
                                 ends_at=now + timedelta(hours=8), actor="bench",
                                 now=now)
        change_state(db, session=session, action="open", actor="bench", now=now)
        rows = [RosterRow(nip=f"19900101202001{n:04d}", name=f"Bench {n}", job_group="pengawas",
                          grade="", position="", unit="") for n in range(takers)]
        import_roster(db, session=session, rows=rows, secret=secret, actor="bench", now=now)
        for entry, nip in db.execute(select(RosterEntry, Participant.nip).join(
                Participant, Participant.id == RosterEntry.participant_id)):
            logins.append((nip, decrypt_token(secret, entry.token_encrypted)))
    database.dispose()
    return logins


def start_server(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    log = open(Path(tempfile.gettempdir()) / f"cact-bench-server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            try:
                httpx.put(f"http://127.0.0.1:{port}/bare", timeout=1,
                          json={"taker": 0, "item": 0, "response": None, "seq": 0})
                return proc
            except httpx.HTTPError:
                time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def server_usage(pid: int, memory: str = "VmHWM") -> tuple[float, int]:
    """CPU seconds used so far and peak resident memory (KiB) of the server process and its
    worker processes (read from /proc, Linux). ``memory="VmRSS"``: their memory now instead
    of the peak."""
    tick = os.sysconf("SC_CLK_TCK")
    family = {pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                family.add(int(entry.name))
    cpu, peak = 0.0, 0
    for member in family:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(f"{memory}:"):
                    peak += int(line.split()[1])
        except OSError:
            continue
    return cpu, peak


async def submit_phase(base: str, takers, concurrency: int):
    """Everyone hands in (the end of the session)."""
    latencies, errors = [], defaultdict(int)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def one(taker: dict) -> None:
            t0 = time.perf_counter()
            r = await client.post("/api/v1/taker/submit", headers=taker["headers"])
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200 or r.json()["state"] != "submitted":
                errors[str(r.status_code)] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(t) for t in takers))
        return time.perf_counter() - t0, latencies, errors


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"p50 {at(0.50):.0f} ms, p95 {at(0.95):.0f} ms, p99 {at(0.99):.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


START_PATHS = ("/api/v1/taker/login", "/api/v1/taker/attempt")
BARE_START_PATHS = ("/bare-login", "/bare-form")


async def start_phase(base: str, logins, concurrency: int, window: float,
                      paths: tuple[str, str] = START_PATHS):
    """Everyone logs in and fetches the form: the 08:00 rush. With ``window`` 0 all at once,
    otherwise each taker at a random moment within the first ``window`` seconds. ``paths``
    (login, form) may name bench/bare_app.py's do-nothing pair instead: the same client work
    against a server that does none.

    The forms are read (parsed as JSON) after the clock stops: a lab's browsers each read
    their own, and this load generator shares the server's cores; the bare form's phase does
    not read them either."""
    limits = httpx.Limits(max_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    rng = random.Random(3)
    received, latencies, errors = [], defaultdict(list), defaultdict(int)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        async def one(nip, token):
            await asyncio.sleep(rng.uniform(0, window))
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(paths[0], json={"nip": nip, "token": token,
                                                      "workstation": f"pc-{nip}"})
                latencies["login"].append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors[f"login {r.status_code}"] += 1
                    return
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                attempt_id = r.json()["attempt_id"]
                t1 = time.perf_counter()
                form = await client.get(paths[1], headers=headers)
                latencies["form"].append(time.perf_counter() - t1)
                latencies["login+form"].append(time.perf_counter() - t0)
                if form.status_code != 200:
                    errors[f"form {form.status_code}"] += 1
                    return
                received.append((headers, attempt_id, form.content))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(n, t) for n, t in logins))
        elapsed = time.perf_counter() - t0
    takers = []
    for headers, attempt_id, body in received:
        items = [(i["item_id"], [o["id"] for o in i["options"]], i["kind"])
                 for i in json.loads(body)["items"] if i["stem"] is not None]
        takers.append({"headers": headers, "items": items, "seq": 0, "attempt_id": attempt_id})
    if received and paths == START_PATHS:
        FORM_SAMPLE.write_bytes(received[0][2])
    return takers, elapsed, latencies, errors


FORM_SAMPLE = Path(tempfile.gettempdir()) / "cact-bench-form.json"


async def bare_form_phase(base: str, total: int, concurrency: int):
    """The stored form, ``total`` times at ``concurrency`` connections: forms per second."""
    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(
            max_connections=concurrency), timeout=120) as client:
        async def one() -> None:
            nonlocal errors
            async with sem:
                t0 = time.perf_counter()
                r = await client.get("/bare-form")
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return time.perf_counter() - t0, latencies, errors


class SaveLog:
    """What the client saw: acknowledged seqs per (attempt, item), latencies, errors."""

    def __init__(self) -> None:
        self.acked: dict[tuple[int, int], int] = {}  # highest acknowledged seq
        self.latencies: list[float] = []
        self.errors: dict[str, int] = defaultdict(int)
        self.stale = 0


async def send_save(client, taker: dict, rng: random.Random, log: SaveLog) -> None:
    """One answer change of one taker, with 5 % older saves arriving late and 5 % sent twice
    (a retried request), each acknowledgement recorded for the durability check."""
    item_id, options, kind = rng.choice(taker["items"])
    taker["seq"] += 1
    seq = taker["seq"]
    roll = rng.random()
    if roll < 0.05 and seq > 2:
        seq -= 2  # an older save arriving late
    response = [rng.choice(options)] if kind == "multiple" else rng.choice(options)
    body = {"response": response, "seq": seq, "flagged": roll > 0.97}
    for _ in range(2 if roll > 0.95 else 1):
        t0 = time.perf_counter()
        try:
            r = await client.put(f"/api/v1/taker/answers/{item_id}", json=body,
                                 headers=taker["headers"])
        except httpx.HTTPError as exc:
            log.errors[type(exc).__name__] += 1
            continue
        log.latencies.append(time.perf_counter() - t0)
        if r.status_code != 200:
            log.errors[str(r.status_code)] += 1
            continue
        data = r.json()
        log.stale += not data["accepted"]
        key = (taker["attempt_id"], item_id)
        log.acked[key] = max(log.acked.get(key, 0), data["stored_seq"])


async def save_phase(base: str, takers, total: int, concurrency: int, log: SaveLog):
    """Closed loop: ``concurrency`` connections send saves back to back (the capacity)."""
    rng = random.Random(7)
    sent = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                await send_save(client, takers[rng.randrange(len(takers))], rng, log)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


async def paced_phase(base: str, takers, seconds: float, think: float, concurrency: int,
                      log: SaveLog):
    """The exam as it is sat: every taker changes an answer after a random think time
    (exponential, mean ``think`` seconds), for ``seconds``. Latency here is what a taker
    waits for "tersimpan" under the room's real load."""
    rng = random.Random(11)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        end = time.perf_counter() + seconds

        async def taker_loop(taker: dict) -> None:
            while True:
                pause = rng.expovariate(1 / think)
                if time.perf_counter() + pause >= end:
                    return
                await asyncio.sleep(pause)
                await send_save(client, taker, rng, log)

        t0 = time.perf_counter()
        await asyncio.gather(*(taker_loop(t) for t in takers))
        return time.perf_counter() - t0


async def bare_phase(base: str, total: int, concurrency: int):
    latencies = []
    counter = {"sent": 0, "errors": 0}
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(
            max_connections=concurrency), timeout=60) as client:
        async def worker(wid: int):
            while counter["sent"] < total:
                counter["sent"] += 1
                t0 = time.perf_counter()
                try:
                    r = await client.put("/bare", json={"taker": wid, "item": counter["sent"],
                                                        "response": 1, "seq": counter["sent"]})
                except httpx.HTTPError:
                    counter["errors"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                counter["errors"] += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, counter["errors"]


def verify(env: dict[str, str], acked: dict[tuple[int, int], int]) -> tuple[int, int]:
    """Acknowledged saves the database does not hold: lost (no answer stored) and regressed
    (an older seq stored than the one acknowledged)."""
    from sqlalchemy import select

    from app.db import Database
    from app.delivery.models import Answer
    from app.settings import Settings

    settings = Settings(data_dir=Path(env["CACT_DATA_DIR"]),
                        database_url=env["CACT_DATABASE_URL"], secret_key=env["CACT_SECRET_KEY"])
    database = Database(settings.database_url)
    with database.transaction(write=False) as db:
        stored = {(a, i): seq for a, i, seq in db.execute(
            select(Answer.attempt_id, Answer.item_id, Answer.seq))}
    database.dispose()
    lost = sum(1 for key in acked if key not in stored)
    regressed = sum(1 for key, seq in acked.items() if key in stored and stored[key] < seq)
    return lost, regressed


def fresh_postgresql(url: str, create: bool = True) -> None:
    """Drop and create the database named in ``url`` (the bench starts from nothing); with
    ``create=False`` only drop it (a bench cleaning up after itself)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=2000)
    parser.add_argument("--saves", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--think", type=float, default=10.0,
                        help="paced phase: mean seconds between a taker's answer changes")
    parser.add_argument("--paced-seconds", type=float, default=60.0,
                        help="length of the paced phase (0: skip it)")
    parser.add_argument("--start-window", type=float, default=0.0,
                        help="session start: takers log in at random moments within this "
                             "many seconds (0: all at once)")
    args = parser.parse_args()
    if args.db:
        fresh_postgresql(args.db)

    data_dir = Path(tempfile.mkdtemp(prefix="cact-autosave-"))
    env = {"CACT_DATA_DIR": str(data_dir), "CACT_SECRET_KEY": "b" * 48,
           "CACT_DATABASE_URL": args.db}
    t0 = time.perf_counter()
    logins = setup(env, args.takers)
    print(f"setup: {args.takers} participants in {time.perf_counter() - t0:.1f} s "
          f"({'PostgreSQL' if args.db else 'SQLite'}, {args.workers} worker(s))")

    port = free_port()
    server = start_server([sys.executable, "-m", "app.cli", "serve", "--port", str(port),
                           "--workers", str(args.workers)], env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        takers, elapsed, latencies, errors = asyncio.run(
            start_phase(base, logins, args.concurrency, args.start_window))
        print(f"session start: {len(takers)} logged in and got their form in {elapsed:.1f} s; "
              f"errors {dict(errors)}")
        start_rate = len(takers) / elapsed
        for kind in ("login", "form", "login+form"):
            print(f"  {kind}: {percentiles(latencies[kind])}")
        log = SaveLog()
        elapsed = asyncio.run(save_phase(base, takers, args.saves, args.concurrency, log))
        rate = len(log.latencies) / elapsed
        print(f"autosave capacity (closed loop, {args.concurrency} connections): "
              f"{len(log.latencies)} requests in {elapsed:.1f} s = {rate:.0f}/s, "
              f"{percentiles(log.latencies)}; stale (not accepted) {log.stale}, "
              f"errors {dict(log.errors)}")
        if args.paced_seconds:
            paced = SaveLog()
            elapsed = asyncio.run(paced_phase(base, takers, args.paced_seconds, args.think,
                                              args.concurrency, paced))
            print(f"autosave as sat (each taker every {args.think:g} s on average, "
                  f"{args.paced_seconds:g} s): {len(paced.latencies)} requests = "
                  f"{len(paced.latencies) / elapsed:.0f}/s, {percentiles(paced.latencies)}; "
                  f"errors {dict(paced.errors)}")
            for key, seq in paced.acked.items():
                log.acked[key] = max(log.acked.get(key, 0), seq)
        elapsed, latencies, errors = asyncio.run(submit_phase(base, takers, args.concurrency))
        print(f"submit: {len(latencies)} takers handed in within {elapsed:.1f} s, "
              f"{percentiles(latencies)}; errors {dict(errors)}")
        cpu, peak = server_usage(server.pid)
        print(f"server: {cpu:.0f} CPU seconds in {time.perf_counter() - t0:.0f} s of bench, "
              f"peak memory {peak / 1024:.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)
    lost, regressed = verify(env, log.acked)
    print(f"durability: {len(log.acked)} acknowledged answers checked, "
          f"lost {lost}, regressed {regressed}")

    bare_port = free_port()
    bare_env = {"CACT_BARE_DB": str(data_dir / "bare.sqlite3"),
                "CACT_BARE_FORM": str(FORM_SAMPLE)}
    bare = start_server([sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port",
                         str(bare_port), "--workers", str(args.workers), "--log-level",
                         "warning", "--timeout-keep-alive", "75"], bare_env, bare_port)
    try:
        elapsed, bare_latencies, bare_errors = asyncio.run(
            bare_phase(f"http://127.0.0.1:{bare_port}", args.saves, args.concurrency))
        form_elapsed, form_latencies, form_errors = asyncio.run(
            bare_form_phase(f"http://127.0.0.1:{bare_port}", args.takers, args.concurrency))
        _, pair_elapsed, pair_latencies, pair_errors = asyncio.run(
            start_phase(f"http://127.0.0.1:{bare_port}", logins, args.concurrency, 0.0,
                        BARE_START_PATHS))
    finally:
        bare.terminate()
        bare.wait(timeout=30)
    bare_rate = len(bare_latencies) / elapsed
    print(f"bare endpoint: {bare_rate:.0f}/s, {percentiles(bare_latencies)}, "
          f"errors {bare_errors}")
    print(f"autosave / bare throughput: {rate / bare_rate:.0%}")
    size = FORM_SAMPLE.stat().st_size if FORM_SAMPLE.exists() else 0
    form_rate = args.takers / form_elapsed
    print(f"bare stored form ({size:,} bytes): {args.takers} in {form_elapsed:.1f} s = "
          f"{form_rate:.0f}/s, {percentiles(form_latencies)}, errors {form_errors}")
    print(f"session start (login + form) / bare stored form: {start_rate:.0f}/s vs "
          f"{form_rate:.0f}/s = {start_rate / form_rate:.0%}")
    pair_rate = args.takers / pair_elapsed
    print(f"bare login + stored form (two requests that do nothing): {args.takers} in "
          f"{pair_elapsed:.1f} s = {pair_rate:.0f}/s, login+form "
          f"{percentiles(pair_latencies['login+form'])}, errors {dict(pair_errors)}; "
          f"its share of the bare stored form {pair_rate / form_rate:.0%}")
    print(f"session start / bare login + stored form: {start_rate / pair_rate:.0%}")


if __name__ == "__main__":
    main()
