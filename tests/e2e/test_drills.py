"""Durability drill: the server is killed with SIGKILL in the middle of a stream of saves and
started again. Every save that was acknowledged before the kill is in the database, the
takers' clients (retrying like the page's journal) finish their work after the restart, and
the audit chain still verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import pytest
from sqlalchemy import select

from tests.e2e.conftest import SETUP_EXAMS, run_cli, start_server

pytestmark = pytest.mark.e2e


class Taker(threading.Thread):
    """Saves answer after answer; a save that fails (server gone) is retried with the same
    seq until it is acknowledged, exactly like the page's journal."""

    def __init__(self, base: dict, nip: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.nip, self.token, self.stop = base, nip, token, stop
        self.acked: dict[int, int] = {}  # item -> highest acknowledged seq
        self.failures = 0
        self.attempt_id = 0

    def call(self, method: str, path: str, **kwargs):
        while not self.stop.is_set():
            try:
                response = httpx.request(method, self.base["url"] + path, timeout=5, **kwargs)
                if response.status_code < 500:
                    return response
            except httpx.HTTPError:
                pass
            self.failures += 1
            time.sleep(0.2)
        return None

    def run(self) -> None:
        login = self.call("POST", "/api/v1/taker/login",
                          json={"nip": self.nip, "token": self.token, "workstation": self.nip})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        self.attempt_id = login.json()["attempt_id"]
        form = self.call("GET", "/api/v1/taker/attempt", headers=headers).json()
        items = [i for i in form["items"] if i["stem"] is not None]
        seq = 0
        while not self.stop.is_set():
            item = items[seq % len(items)]
            seq += 1
            option = item["options"][seq % len(item["options"])]["id"]
            body = {"response": [option] if item["kind"] == "multiple" else option, "seq": seq}
            response = self.call("PUT", f"/api/v1/taker/answers/{item['item_id']}",
                                 json=body, headers=headers)
            if response is not None and response.status_code == 200:
                stored = response.json()["stored_seq"]
                self.acked[item["item_id"]] = max(self.acked.get(item["item_id"], 0), stored)


def test_kill_dash_nine_loses_no_acknowledged_answer(tmp_path):
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"), "CACT_DATABASE_URL": ""}
    run_cli(env, "db", "upgrade")
    setup = subprocess.run([sys.executable, "-c", SETUP_EXAMS], env=env, capture_output=True,
                           text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    logins = json.loads(setup.stdout.strip().splitlines()[-1])["normal"]
    server, url = start_server(env, tmp_path / "first.log")
    base = {"url": url}
    stop = threading.Event()
    takers = [Taker(base, nip, token, stop) for nip, token in logins]
    for taker in takers:
        taker.start()
    time.sleep(3)
    before_kill = {t.nip: dict(t.acked) for t in takers}
    assert sum(len(a) for a in before_kill.values()) > 0, "no save got through before the kill"
    server.kill()  # SIGKILL: no shutdown, no flush, nothing
    server.wait(timeout=10)
    time.sleep(1)
    failures_while_down = sum(t.failures for t in takers)
    server, base["url"] = start_server(env, tmp_path / "second.log")
    try:
        time.sleep(3)  # the takers retry and carry on against the new process
        stop.set()
        for taker in takers:
            taker.join(timeout=15)
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert failures_while_down > 0  # they did see the server gone

    from app.db import Database
    from app.delivery.models import Answer

    database = Database(f"sqlite:///{tmp_path / 'data' / 'cact.sqlite3'}")
    with database.transaction(write=False) as db:
        stored = {(a, i): s for a, i, s in db.execute(
            select(Answer.attempt_id, Answer.item_id, Answer.seq))}
    database.dispose()
    for taker in takers:
        assert taker.acked, f"{taker.nip} never saved"
        for item, seq in taker.acked.items():  # before and after the kill
            assert stored.get((taker.attempt_id, item), 0) >= seq, (taker.nip, item, seq)
        grew = sum(taker.acked.values()) > sum(before_kill[taker.nip].values())
        assert grew, f"{taker.nip} did not finish its work after the restart"
    verified = subprocess.run([sys.executable, "-m", "app.cli", "audit", "verify"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print(f"\ndrill: {sum(len(a) for a in before_kill.values())} answers acknowledged before "
          f"kill -9, {failures_while_down} failed tries while the server was down, "
          f"{sum(len(t.acked) for t in takers)} answers acknowledged in all, none missing; "
          f"the audit chain verifies")
