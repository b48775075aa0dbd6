"""A real server (uvicorn subprocess, SQLite file) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ADMIN = ("admin", "e2e-admin-password")
_ENV: dict = {}

SETUP_EXAMS = """
import json
from app.clock import SystemClock
from app.db import Database
from app.settings import get_settings
from tests.factories import make_open_session
settings = get_settings()
database = Database(settings.database_url)
with database.transaction() as db:
    _, normal = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                  participants=6, code="E2E")
    _, short = make_open_session(db, SystemClock(), secret=settings.resolved_secret(),
                                 participants=2, code="E2E-SHORT", first=50, section_seconds=6)
print(json.dumps({"normal": normal, "short": short}))
"""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} missing: apt-get install chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(env, *args, stdin=None):
    result = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, input=stdin,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pg_exam(tmp_path: Path, prefix: str) -> tuple[str, dict, dict[str, list[list[str]]]]:
    """A fresh PostgreSQL database for servers started by a test: migrated, with the admin of
    ADMIN and the exams of SETUP_EXAMS. Returns (its URL, the servers' environment, the
    exams' logins by kind); the test drops the database when done (``drop_pg_database``)."""
    import json

    from tests.conftest import create_pg_database, drop_pg_database, pg_reachable

    problem = pg_reachable()
    if problem:
        unavailable(problem)
    url = create_pg_database(prefix)
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": url}
    try:
        run_cli(env, "db", "upgrade")
        run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--password-stdin",
                stdin=ADMIN[1] + "\n")
        setup = subprocess.run([sys.executable, "-c", SETUP_EXAMS], env=env,
                               capture_output=True, text=True, timeout=120)
        assert setup.returncode == 0, setup.stderr
    except BaseException:
        drop_pg_database(url)
        raise
    return url, env, json.loads(setup.stdout.strip().splitlines()[-1])


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Stop what a test started, the last started first (nginx before the servers behind it),
    killing what does not stop within 10 s."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_server(env: dict, log_path: Path, *args: str,
                 port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`cact serve` on a free port (or ``port``: a restart where a browser page still is),
    ``args`` added (e.g. "--workers", "2"), its output in ``log_path``; returns once /healthz
    answers."""
    port = port or free_port()
    log = log_path.open("w")  # open for the server's lifetime
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return proc, base
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(log_path.read_text())
        time.sleep(0.2)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> str:
    """`cact serve` on a free port with its own data directory; the admin exists."""
    data_dir: Path = tmp_path_factory.mktemp("e2e-data")
    env = {**os.environ, "CACT_DATA_DIR": str(data_dir), "CACT_DATABASE_URL": ""}
    run_cli(env, "db", "upgrade")
    run_cli(env, "user", "create", ADMIN[0], "--role", "admin", "--full-name", "Admin E2E",
            "--password-stdin", stdin=ADMIN[1] + "\n")
    proc, base = start_server(env, data_dir / "server.log")
    _ENV["env"] = env
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def live_env(live_server) -> dict:
    """The live server's environment (its data directory), for a test's own setup script."""
    return _ENV["env"]


@pytest.fixture(scope="session")
def exam_logins(live_server) -> dict[str, list[list[str]]]:
    """Two open sessions on the live server: E2E (10 + 5 minute sections) and E2E-SHORT
    (6-second sections, for the clock). Each test takes its own participants."""
    import json

    result = subprocess.run([sys.executable, "-c", SETUP_EXAMS], env=_ENV["env"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
