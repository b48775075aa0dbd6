"""Soak: does the server's memory stay flat over a long exam? (issue #19: nothing may grow per
request without bound.)

    .venv/bin/python bench/soak.py --takers 2000 --minutes 30
    .venv/bin/python bench/soak.py --takers 2000 --minutes 30 \\
        --db postgresql+psycopg://postgres@127.0.0.1/cactbench_soak

1. Builds bench/autosave.py's exam (sample banks, the half-day blueprint of 112 items per
   form, one open session of --takers participants) on SQLite, or on the PostgreSQL database
   of --db (dropped and created first, dropped at the end), and starts one `cact serve`.
2. Every taker logs in and fetches the form (bench/autosave.py's start, all at once).
3. Then the exam as sat, for --minutes: each taker changes an answer after a random think time
   (mean --think seconds), bench/autosave.py's paced phase. Every --sample-seconds the
   server's resident memory (VmRSS of the server process and its children, from /proc) is
   read and a row printed: minute, RSS, saves so far, p99 of the saves of that interval.
4. Everyone hands in; the acknowledged saves are checked against the database (lost and
   regressed must be 0).
5. Prints the first, last and largest RSS sampled, the peak (VmHWM, the start included), and
   the growth from the end of the first --warmup-minutes (default 5: caches, pools and the
   allocator's arenas fill up there) to the end: the flat-memory figure.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import autosave  # noqa: E402 - the bench next to this one: exam, load phases, durability check

# The half-day blueprint's first section (bench/autosave.py's exam) closes 45 minutes after a
# taker starts: the paced phase, which begins about a minute after the first start, must end
# before that.
FIRST_SECTION_MINUTES = 44


def p99_ms(samples: list[float]) -> float:
    """The 99th percentile in milliseconds, the way autosave.percentiles reads it."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def rss_mib(pid: int) -> float:
    return autosave.server_usage(pid, memory="VmRSS")[1] / 1024


async def soak_phase(base: str, pid: int, takers: list[dict], args: argparse.Namespace,
                     log: autosave.SaveLog) -> list[tuple[float, float, int]]:
    """bench/autosave.py's paced phase for --minutes, the server's memory sampled meanwhile;
    returns the samples (seconds into the phase, RSS MiB, saves so far)."""
    seconds = args.minutes * 60
    paced = asyncio.create_task(autosave.paced_phase(base, takers, seconds, args.think,
                                                     args.concurrency, log))
    t0 = time.perf_counter()
    samples: list[tuple[float, float, int]] = []
    print(f"{'minute':>7} {'RSS MiB':>8} {'saves':>8} {'p99 ms':>7} {'errors':>6}", flush=True)

    def sample(mark: int) -> int:
        at, saves = time.perf_counter() - t0, len(log.latencies)
        samples.append((at, rss_mib(pid), saves))
        interval = log.latencies[mark:]
        print(f"{at / 60:>7.1f} {samples[-1][1]:>8.1f} {saves:>8} "
              f"{f'{p99_ms(interval):.0f}' if interval else '-':>7} "
              f"{sum(log.errors.values()):>6}", flush=True)
        return saves

    mark = sample(0)
    tick = 1
    while not paced.done():
        wait = t0 + tick * args.sample_seconds - time.perf_counter()
        await asyncio.wait({paced}, timeout=max(0.0, wait))
        if paced.done():
            break
        mark = sample(mark)
        tick += 1
    sample(mark)  # the end of the phase
    await paced
    return samples


def report(samples: list[tuple[float, float, int]], warmup_minutes: float, peak_mib: float
           ) -> None:
    rss = [r for _, r, _ in samples]
    print(f"memory: first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, largest sampled "
          f"{max(rss):.1f} MiB, peak (VmHWM, the start included) {peak_mib:.0f} MiB")
    end = samples[-1][0]
    warmup = min(warmup_minutes * 60, end / 2)  # a short run: its first half is the warm-up
    base_at, base_rss, _ = max((s for s in samples if s[0] <= warmup), key=lambda s: s[0])
    growth = rss[-1] - base_rss
    print(f"growth from minute {base_at / 60:.1f} to the end (minute {end / 60:.1f}): "
          f"{growth:+.1f} MiB ({growth / base_rss:+.1%})"
          + ("" if warmup == warmup_minutes * 60 else
             f" (run shorter than {2 * warmup_minutes:g} minutes: warm-up taken as its first "
             "half)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takers", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="length of the paced phase")
    parser.add_argument("--think", type=float, default=20.0,
                        help="mean seconds between a taker's answer changes")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0,
                        help="memory growth is measured from the end of these minutes")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="connections of the load generator")
    parser.add_argument("--db", default="", help="PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    if args.minutes > FIRST_SECTION_MINUTES:
        # The takers answer the items of the section open at the start; when it closes the
        # server refuses their saves (409) as it should, and the soak would measure refusals.
        parser.error(f"--minutes {args.minutes:g}: the exam's first section closes 45 minutes "
                     "after the start and the takers here do not move on to the next; use at "
                     f"most {FIRST_SECTION_MINUTES}")
    if args.db:
        autosave.fresh_postgresql(args.db)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    data_dir = Path(tempfile.mkdtemp(prefix="cact-soak-"))
    env = {"CACT_DATA_DIR": str(data_dir), "CACT_SECRET_KEY": "b" * 48,
           "CACT_DATABASE_URL": args.db}
    try:
        soak(args, env)
    finally:
        if args.db:
            autosave.fresh_postgresql(args.db, create=False)
        shutil.rmtree(data_dir, ignore_errors=True)


def soak(args: argparse.Namespace, env: dict[str, str]) -> None:
    server: subprocess.Popen | None = None
    try:
        t0 = time.perf_counter()
        logins = autosave.setup(env, args.takers)
        print(f"setup: {args.takers} participants in {time.perf_counter() - t0:.1f} s "
              f"({'PostgreSQL' if args.db else 'SQLite'}, one server, one worker)", flush=True)
        port = autosave.free_port()
        server = autosave.start_server([sys.executable, "-m", "app.cli", "serve", "--port",
                                        str(port), "--workers", "1"], env, port)
        base = f"http://127.0.0.1:{port}"
        print(f"server idle: {rss_mib(server.pid):.0f} MiB", flush=True)
        takers, elapsed, latencies, errors = asyncio.run(
            autosave.start_phase(base, logins, args.concurrency, 0))
        print(f"start: {len(takers)} logged in and got their form in {elapsed:.1f} s, "
              f"login+form {autosave.percentiles(latencies['login+form'])}; "
              f"errors {dict(errors)}; server {rss_mib(server.pid):.0f} MiB", flush=True)
        log = autosave.SaveLog()
        print(f"paced: each taker every {args.think:g} s on average for {args.minutes:g} "
              f"minutes (about {len(takers) / args.think:.0f} saves/s)", flush=True)
        samples = asyncio.run(soak_phase(base, server.pid, takers, args, log))
        print(f"saves: {len(log.latencies)}, {autosave.percentiles(log.latencies)}; "
              f"stale {log.stale}, errors {dict(log.errors)}", flush=True)
        elapsed, submitted, errors = asyncio.run(
            autosave.submit_phase(base, takers, args.concurrency))
        print(f"hand-in: {len(submitted)} in {elapsed:.1f} s; errors {dict(errors)}",
              flush=True)
        cpu, peak = autosave.server_usage(server.pid)
        print(f"server: {cpu:.0f} CPU seconds", flush=True)
        report(samples, args.warmup_minutes, peak / 1024)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
    lost, regressed = autosave.verify(env, log.acked)
    print(f"durability: {len(log.acked)} acknowledged answers checked, lost {lost}, "
          f"regressed {regressed}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: server stopped")
