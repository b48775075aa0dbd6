"""Foundation figures: password hashing cost, audit-log write and verify speed, dashboard
latency. Run with `make bench` (or `.venv/bin/python bench/foundation.py`).

Prints one line per figure; docs/performance.md records what this machine measured.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from app import audit
from app.auth.security import hash_password, password_hasher, verify_password
from app.clock import SystemClock
from app.db import Database, upgrade
from app.demo import load_demo
from app.main import create_app
from app.settings import Settings


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def describe(name: str, samples_ms: list[float]) -> None:
    samples_ms.sort()
    p95 = samples_ms[int(len(samples_ms) * 0.95) - 1]
    print(f"{name}: median {statistics.median(samples_ms):.1f} ms, p95 {p95:.1f} ms "
          f"(n={len(samples_ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--audit-rows", type=int, default=20000)
    args = parser.parse_args()

    settings = Settings()
    hasher = password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib,
                             settings.argon2_parallelism)
    stored = hash_password(hasher, "bench-password-1")
    describe(f"argon2id verify (t={hasher.time_cost}, m={hasher.memory_cost} KiB)",
             timed(lambda: verify_password(hasher, stored, "bench-password-1"), 20))

    workdir = Path(tempfile.mkdtemp(prefix="cact-bench-"))
    url = args.db or f"sqlite:///{workdir / 'bench.sqlite3'}"
    upgrade(url)
    database = Database(url)
    clock = SystemClock()
    start = time.perf_counter()
    batch = 500
    for _ in range(args.audit_rows // batch):
        with database.transaction() as db:
            for i in range(batch):
                audit.record(db, actor="bench", action="bench.event", target=f"t:{i}",
                             data={"i": i}, now=clock.now())
    elapsed = time.perf_counter() - start
    print(f"audit record: {args.audit_rows / elapsed:,.0f} rows/s "
          f"({args.audit_rows} rows in batches of {batch}, {database.engine.dialect.name})")
    start = time.perf_counter()
    with database.transaction(write=False) as db:
        result = audit.verify(db)
    elapsed = time.perf_counter() - start
    assert result.ok
    print(f"audit verify: {result.checked / elapsed:,.0f} rows/s ({result.checked} rows)")

    app_settings = Settings(data_dir=workdir, database_url=url, argon2_time_cost=2,
                            argon2_memory_kib=19456)
    with database.transaction() as db:
        load_demo(db, settings=app_settings, now=clock.now())
    with TestClient(create_app(app_settings, database=database)) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "admin", "password": "demo-admin-2026",
                                    "csrf_token": token})
        assert client.get("/admin").status_code == 200
        describe("GET /admin dashboard (in-process, demo data)",
                 timed(lambda: client.get("/admin"), 200))
        describe("GET /healthz (in-process)", timed(lambda: client.get("/healthz"), 500))
    database.dispose()


if __name__ == "__main__":
    main()
