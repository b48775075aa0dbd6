"""Two `cact serve` processes on one PostgreSQL database, as K servers behind nginx: whichever
server a taker's page and a proctor's console reach, the proctor sees the taker's saves and the
taker's event stream (`/ujian/peristiwa`) hears the proctor's pause and resume. Nothing of a
session lives in one process, so this holds both ways round."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import drop_pg_database
from tests.e2e.conftest import pg_exam, start_server, stop_all
from tests.e2e.test_multiworker import call_json, post_json, staff_cookie, stream_events

pytestmark = pytest.mark.e2e

CODE = "E2E"
DEADLINE_S = 30.0  # generous: the watcher reads once a second; this only bounds a hang


def console_json(base: str, cookie: str) -> dict:
    request = urllib.request.Request(base + f"/api/v1/proctor/sessions/{CODE}",
                                     headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def seat_of(base: str, cookie: str, nip: str) -> dict:
    return next(s for s in console_json(base, cookie)["seats"] if s["nip"] == nip)


def console_csrf(base: str, cookie: str) -> str:
    request = urllib.request.Request(base + f"/proctor/sessions/{CODE}",
                                     headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def seat_action(base: str, cookie: str, csrf: str, entry_id: int, action: str) -> str:
    request = urllib.request.Request(
        base + f"/api/v1/proctor/sessions/{CODE}/seats/{entry_id}", method="POST",
        data=json.dumps({"action": action, "reason": "uji dua server"}).encode(),
        headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["done"]


def until_state(stream, state: str) -> dict:
    """Read the taker's stream until it says ``state`` (each event is the page's status)."""
    deadline = time.monotonic() + DEADLINE_S
    for event, data in stream:
        payload = json.loads(data)
        if event == "status" and payload["state"] == state:
            return payload
        assert time.monotonic() < deadline, f"the stream never said {state!r}"
    raise AssertionError(f"the stream ended before it said {state!r}")


def until_seat(base: str, cookie: str, nip: str, **expected) -> dict:
    """Poll the console's data until the seat shows ``expected``."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seat = seat_of(base, cookie, nip)
        if all(seat[key] == value for key, value in expected.items()):
            return seat
        assert time.monotonic() < deadline, (expected, seat)
        time.sleep(0.2)


def answer_for(item: dict):
    option = item["options"][0]["id"]
    return [option] if item["kind"] == "multiple" else option


def test_pause_and_progress_cross_between_two_servers(tmp_path):
    url, env, logins = pg_exam(tmp_path, "cact_stream_servers")
    procs: list[subprocess.Popen] = []
    try:
        seats = logins["normal"]
        one, base_one = start_server(env, tmp_path / "one.log")
        two, base_two = start_server(env, tmp_path / "two.log")
        procs = [one, two]
        assert one.pid != two.pid

        # Both ways round: the taker on one server, the proctor on the other.
        for (nip, token), taker_base, proctor_base in ((seats[0], base_one, base_two),
                                                       (seats[1], base_two, base_one)):
            cookie = staff_cookie(proctor_base)
            csrf = console_csrf(proctor_base, cookie)
            seat = seat_of(proctor_base, cookie, nip)
            assert seat["answered"] == 0

            login = post_json(taker_base, "/api/v1/taker/login",
                              {"nip": nip, "token": token, "workstation": "PC-01"})
            access = login["access_token"]
            form = call_json(taker_base, "/api/v1/taker/attempt", access)
            item = form["items"][0]
            saved = call_json(taker_base, f"/api/v1/taker/answers/{item['item_id']}", access,
                              method="PUT", body={"response": answer_for(item), "seq": 1})
            assert saved["accepted"] is True

            # The console on the other server shows the taker's progress.
            seat = until_seat(proctor_base, cookie, nip, answered=1, state="answering")

            # The taker's page listens on its own server; the pause is given on the other.
            stream = stream_events(taker_base, "/ujian/peristiwa", f"cact_taker={access}")
            first = until_state(stream, "active")
            assert first["remaining_s"] > 0
            assert seat_action(proctor_base, cookie, csrf, seat["entry_id"], "pause")
            paused = until_state(stream, "paused")
            assert paused["remaining_s"] is not None
            # The taker's own server answers its status polls with the pause too.
            status = call_json(taker_base, "/api/v1/taker/status", access)
            assert status["state"] == "paused"
            assert seat_action(proctor_base, cookie, csrf, seat["entry_id"], "resume")
            until_state(stream, "active")
            stream.close()

            # Still the same server for the taker: its next save shows on the other's console.
            second = form["items"][1]
            saved = call_json(taker_base, f"/api/v1/taker/answers/{second['item_id']}", access,
                              method="PUT", body={"response": answer_for(second), "seq": 2})
            assert saved["accepted"] is True
            until_seat(proctor_base, cookie, nip, answered=2, state="answering")
    finally:
        stop_all(procs)
        drop_pg_database(url)
