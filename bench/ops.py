"""Operations figures: what /healthz, the metrics middleware and a backup cost on a running
exam. Run with `make bench` (or `.venv/bin/python bench/ops.py`).

- the metrics middleware: one request through a trivial ASGI app with and without it, in
  this process and in multiprocess mode (values in files, as under `cact serve --workers N`);
- GET /healthz in-process on the demo (database write probe, schema, disk, key, clock);
- `cact backup` and `cact restore` of a database with N takers' answers (SQLite).

Prints one line per figure; docs/performance.md records what this machine measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def describe(name: str, samples_ms: list[float]) -> None:
    samples_ms.sort()
    p95 = samples_ms[max(0, int(len(samples_ms) * 0.95) - 1)]
    print(f"{name}: median {statistics.median(samples_ms):.3f} ms, p95 {p95:.3f} ms "
          f"(n={len(samples_ms)})")


async def _trivial(_scope, _receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _drive(app, n: int) -> float:
    scope = {"type": "http", "method": "PUT", "path": "/api/v1/taker/answers/1",
             "route": None}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(_message):
        return None

    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / n * 1e6


def middleware_cost(n: int) -> None:
    from app.ops.metrics import Metrics, MetricsMiddleware

    registry_metrics = Metrics(registry=__import__("prometheus_client").CollectorRegistry())
    bare = asyncio.run(_drive(_trivial, n))
    wrapped = asyncio.run(_drive(MetricsMiddleware(_trivial, registry_metrics), n))
    print(f"metrics middleware, one process: {wrapped - bare:.1f} us per request "
          f"(bare {bare:.1f} us, wrapped {wrapped:.1f} us, n={n})")


def middleware_cost_multiprocess(n: int) -> None:
    """In a child process with PROMETHEUS_MULTIPROC_DIR set before prometheus_client loads."""
    import subprocess

    folder = tempfile.mkdtemp(prefix="cact-bench-metrics-")
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.ops import _mp_child; _mp_child({n})")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": folder})


def _mp_child(n: int) -> None:
    from app.ops.metrics import Metrics, MetricsMiddleware

    metrics = Metrics(registry=None)
    bare = asyncio.run(_drive(_trivial, n))
    wrapped = asyncio.run(_drive(MetricsMiddleware(_trivial, metrics), n))
    print(f"metrics middleware, multiprocess files: {wrapped - bare:.1f} us per request "
          f"(n={n})")


def healthz(n: int) -> None:
    from fastapi.testclient import TestClient

    from app.clock import SystemClock
    from app.db import Database, upgrade
    from app.demo import load_demo
    from app.main import create_app
    from app.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="cact-bench-ops-"))
    url = f"sqlite:///{workdir / 'cact.sqlite3'}"
    upgrade(url)
    database = Database(url)
    settings = Settings(data_dir=workdir, database_url=url, secret_key="b" * 48,
                        argon2_time_cost=2, argon2_memory_kib=19456)
    with database.transaction() as db:
        load_demo(db, settings=settings, now=SystemClock().now())
    with TestClient(create_app(settings, database=database)) as client:
        assert client.get("/healthz").status_code == 200
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            client.get("/healthz")
            samples.append((time.perf_counter() - start) * 1000)
        describe("GET /healthz, every check (in-process, SQLite, demo)", samples)
    database.dispose()


def backup_restore(takers: int) -> None:
    from sqlalchemy import select

    from app.bank.models import Item, ItemKind
    from app.clock import SystemClock
    from app.db import Database, upgrade
    from app.delivery import attempts, saving, timing
    from app.delivery.models import AttemptItem
    from app.ops.backup import create_backup
    from app.ops.restore import restore
    from app.settings import Settings
    sys.path.insert(0, str(ROOT))  # the test factories build the session and roster
    from tests.factories import make_open_session

    workdir = Path(tempfile.mkdtemp(prefix="cact-bench-backup-"))
    url = f"sqlite:///{workdir / 'data' / 'cact.sqlite3'}"
    upgrade(url)
    database = Database(url)
    secret = "b" * 48
    settings = Settings(data_dir=workdir / "data", database_url=url, secret_key=secret)
    clock = SystemClock()
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=secret, participants=takers,
                                      code="BENCH")
    with database.transaction(write=False) as db:
        kinds = dict(db.execute(select(Item.id, Item.kind)).all())
    answered = 0
    for nip, token in logins:
        with database.transaction() as db:
            now = clock.now()
            login = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip}",
                                   client_addr="bench", secret=secret, now=now)
            timing.start(db, attempt=login.attempt, now=now)
            form = db.execute(select(AttemptItem.item_id, AttemptItem.option_order)
                              .where(AttemptItem.attempt_id == login.attempt.id,
                                     AttemptItem.section == 0)  # the open section
                              .order_by(AttemptItem.position)).all()
            for seq, (item_id, order) in enumerate(form, start=1):
                response = [order[0]] if kinds[item_id] == ItemKind.multiple else order[0]
                saving.save_answer(db, attempt=login.attempt, item_id=item_id,
                                     response=response, seq=seq, flagged=False,
                                     workstation=f"PC-{nip}", grace_s=15, now=now)
                answered += 1
    database.dispose()
    size = Path(url.removeprefix("sqlite:///")).stat().st_size
    start = time.perf_counter()
    result = create_backup(settings, workdir / "backups")
    made = time.perf_counter() - start
    print(f"cact backup (SQLite, {takers} takers, {answered} answers, "
          f"{size / 1e6:.1f} MB database): {made:.2f} s, archive "
          f"{result.path.stat().st_size / 1e6:.1f} MB")
    target = Settings(data_dir=workdir / "restored",
                      database_url=f"sqlite:///{workdir / 'restored' / 'cact.sqlite3'}",
                      secret_key=secret)
    start = time.perf_counter()
    report = restore(target, result.path)
    print(f"cact restore (same archive, checked against its manifest): "
          f"{time.perf_counter() - start:.2f} s, {'ok' if report.ok else 'DIFFERS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--healthz", type=int, default=300)
    parser.add_argument("--takers", type=int, default=200)
    args = parser.parse_args()
    middleware_cost(args.requests)
    middleware_cost_multiprocess(args.requests)
    healthz(args.healthz)
    backup_restore(args.takers)


if __name__ == "__main__":
    main()
