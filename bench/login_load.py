"""Taker saves while staff logins fail: does a password-guessing burst slow the exam down?

    .venv/bin/python bench/login_load.py                 # 40 takers, 8 attackers, 20 s per phase
    .venv/bin/python bench/login_load.py --attackers 8 --seconds 30

1. Builds the autosave benchmark's database (sample banks, half-day blueprint) with --takers
   participants and one staff account, and starts `cact serve` (production settings; the
   benchmark is the trusted proxy, so X-Forwarded-For is the client address).
2. Logs every taker in and fetches the forms.
3. Quiet: --probes connections send taker saves back to back for --seconds; the median and
   p95 of a save is the reference.
4. Attack: the same saves, while --attackers clients send wrong passwords for the staff
   account as fast as the server answers, each request from a new address (so the throttle
   never stops them: the worst case for the server, not for the account).
5. Then --attackers clients send wrong tokens for one taker's NIP as fast as they can from two
   addresses (refused by the throttle after the first few): the saves' median again.

The figure in docs/performance.md: save p50 under attack / quiet p50 (the target is at most 2).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from autosave import SaveLog, free_port, send_save, setup, start_phase, start_server  # noqa: E402

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def describe(name: str, samples: list[float]) -> float:
    samples = sorted(samples)
    median = statistics.median(samples) * 1000
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)] * 1000
    print(f"{name}: save median {median:.1f} ms, p95 {p95:.1f} ms (n={len(samples)})")
    return median


async def probe_saves(base: str, takers, seconds: float, probes: int) -> list[float]:
    """``probes`` connections saving back to back: the latency a taker waits for
    "tersimpan" while the server does whatever else it is asked."""
    log = SaveLog()
    rng = random.Random(5)
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async def loop() -> None:
            while time.perf_counter() < end:
                await send_save(client, takers[rng.randrange(len(takers))], rng, log)
        await asyncio.gather(*(loop() for _ in range(probes)))
    if log.errors:
        print(f"  save errors: {dict(log.errors)}")
    return log.latencies


async def staff_attack(base: str, attackers: int, stop: asyncio.Event) -> dict[str, int]:
    """Wrong passwords for "admin", every request from a new address through the proxy
    header: no throttle ever applies, every one costs a password check."""
    counts: dict[str, int] = {}
    addresses = (f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}" for n in itertools.count(1))

    async def one() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            csrf = CSRF_RE.search((await client.get("/login")).text).group(1)
            while not stop.is_set():
                response = await client.post(
                    "/login", data={"username": "admin", "password": "wrong-guess",
                                    "csrf_token": csrf},
                    headers={"X-Forwarded-For": next(addresses)})
                counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
    await asyncio.gather(*(one() for _ in range(attackers)))
    return counts


async def taker_attack(base: str, attackers: int, nip: str, stop: asyncio.Event
                       ) -> dict[str, int]:
    """Wrong tokens for one NIP as fast as possible from two addresses (the lock-out attack:
    after the first few every attempt is refused by the throttle)."""
    counts: dict[str, int] = {}

    async def one(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            while not stop.is_set():
                response = await client.post(
                    "/api/v1/taker/login", json={"nip": nip, "token": "WRONG234"},
                    headers={"X-Forwarded-For": f"192.168.66.{n % 2 + 1}"})
                counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
    await asyncio.gather(*(one(n) for n in range(attackers)))
    return counts


async def under(attack, base: str, takers, seconds: float, probes: int, *args):
    stop = asyncio.Event()
    task = asyncio.create_task(attack(base, *args, stop))
    await asyncio.sleep(1.0)  # the attack is running
    latencies = await probe_saves(base, takers, seconds, probes)
    stop.set()
    counts = await task
    return latencies, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=40)
    parser.add_argument("--attackers", type=int, default=8)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cact-login-bench-"))
    env = {"CACT_DATA_DIR": str(tmp), "CACT_DATABASE_URL": "",
           "CACT_SECRET_KEY": "b" * 40, "CACT_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    logins = setup(env, args.takers)
    subprocess.run([sys.executable, "-m", "app.cli", "user", "create", "admin", "--role",
                    "admin", "--password-stdin"], input="correct-horse-battery\n", text=True,
                   env={**os.environ, **env}, check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                          env, port)
    try:
        takers, _, _, errors = asyncio.run(start_phase(base, logins, 40, 0.0))
        assert takers and not errors, errors
        print(f"{len(takers)} takers logged in; {args.probes} connections saving, "
              f"{args.seconds:.0f} s per phase")
        quiet = describe("quiet", asyncio.run(probe_saves(base, takers, args.seconds,
                                                          args.probes)))
        latencies, counts = asyncio.run(under(staff_attack, base, takers, args.seconds,
                                              args.probes, args.attackers))
        staff = describe(f"{args.attackers} clients of failed staff logins (rotating "
                         f"addresses; answers {counts})", latencies)
        victim = logins[-1][0]
        latencies, counts = asyncio.run(under(taker_attack, base, takers, args.seconds,
                                              args.probes, args.attackers, victim))
        flood = describe(f"{args.attackers} clients of wrong tokens for one NIP from two "
                         f"addresses (answers {counts})", latencies)
        print(f"ratio to quiet: staff-login attack {staff / quiet:.2f}x, "
              f"token flood {flood / quiet:.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
