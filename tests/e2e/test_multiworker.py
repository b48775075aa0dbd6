"""Two app workers on one PostgreSQL database, as behind nginx: a taker saves through one, the
proctor's event stream is served by the other, and the stream still shows the answer. Nothing
about a session lives in one process."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request

import pytest

from tests.conftest import drop_pg_database
from tests.e2e.conftest import ADMIN, pg_exam, start_server, stop_all

pytestmark = pytest.mark.e2e


def post_json(base: str, path: str, body: dict, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def call_json(base: str, path: str, token: str, method: str = "GET", body=None) -> dict:
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def staff_cookie(base: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": ADMIN[0], "password": ADMIN[1],
                                   "csrf_token": csrf}).encode()
    opener.open(base + "/login", data=form, timeout=10).read()
    cookies = {c.name: c.value for c in jar}
    assert "cact_session" in cookies, "staff login failed"
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def stream_events(base: str, path: str, cookie: str):
    """Yield (event, HTML) for each event of the stream: a full ``grid``, then ``rows``."""
    parsed = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=20)
    conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type", "").startswith(
        "text/event-stream")
    event, data = "", []
    try:
        while True:
            line = response.fp.readline().decode()
            if not line:
                return
            line = line.rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "":
                if event:
                    yield event, "\n".join(data)
                event, data = "", []
    finally:
        conn.close()


def progress_of(html: str, nip: str) -> str | None:
    """The row's "answered/total" cell, or None when the push does not carry that row."""
    row = re.search(rf'data-testid="seat-{nip}".*?</tr>', html, re.S)
    return re.search(r'data-testid="progress">([^<]*)<', row.group(0)).group(1) if row else None


def test_a_save_on_one_worker_shows_on_the_stream_of_another(tmp_path):
    url, env, logins = pg_exam(tmp_path, "cact_multiworker")
    procs = []
    try:
        nip, token = logins["normal"][0]
        one, base_one = start_server(env, tmp_path / "one.log")
        two, base_two = start_server(env, tmp_path / "two.log")
        procs = [one, two]
        assert one.pid != two.pid

        stream = stream_events(base_two, "/proctor/sessions/E2E/stream",
                               staff_cookie(base_two))
        event, html = next(stream)
        assert event == "grid" and progress_of(html, nip) == "—"  # not logged in yet

        login = post_json(base_one, "/api/v1/taker/login",
                          {"nip": nip, "token": token, "workstation": "PC-01"})
        form = call_json(base_one, "/api/v1/taker/attempt", login["access_token"])
        item = form["items"][0]
        option = item["options"][0]["id"]
        saved = call_json(base_one, f"/api/v1/taker/answers/{item['item_id']}",
                          login["access_token"], method="PUT",
                          body={"response": [option] if item["kind"] == "multiple" else option,
                                "seq": 1})
        assert saved["accepted"] is True
        acknowledged = time.monotonic()
        for _event, html in stream:
            if progress_of(html, nip) == "1/5":
                break
            assert time.monotonic() - acknowledged < 5, "the other worker never showed it"
        assert time.monotonic() - acknowledged < 3  # "within about 2 seconds"
        stream.close()
    finally:
        stop_all(procs)
        drop_pg_database(url)
