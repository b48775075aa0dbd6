"""An admin's upload cannot stall the exam (security review #13, finding 6).

Bank and blueprint files are read in a child process with a time and memory budget, never in
the server's event loop, and YAML aliases are refused. Before, a 550-byte "billion laughs" bank
held every taker's save for 5-7 s, an honest 5,000-item bank for 5-11 s (the whole upload) and
a 5,000-row roster for 5 s; the tests below failed on that code."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import httpx2 as httpx
import pytest

from app.clock import SystemClock
from bench.bank_import import make_bank
from tests.conftest import csrf_from, staff_login
from tests.e2e.conftest import start_server

PASSWORD = "correct-horse-1"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": each level lists nine aliases of the one before, so level
    n names 9**(n+1) strings, all in a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# Used where the old reader copied or printed the value (a bank's scoring rules, a blueprint's
# name and description): 4.8 million strings each time, seconds of one core and hundreds of MB
# per use in the old reader. Deeper levels only take longer.
BANK_BOMB = ("format: cact-itembank/1\nbank: {code: BOMB, title: Bom, kind: potensi}\n"
             + alias_bomb() + "scoring: {x: *a6, y: *a6, z: *a6}\nitems: []\n")
BLUEPRINT_BOMB = ("format: cact-blueprint/1\ncode: BP-BOMB\n" + alias_bomb()
                  + "name: *a6\ndescription: *a6\nsections: []\n")


def test_the_bombs_are_small():
    assert len(BANK_BOMB) < 800 and len(BLUEPRINT_BOMB) < 800


def test_yaml_aliases_and_merges_are_refused_with_their_line_anchors_alone_are_harmless():
    from app.bank import yamlio

    for text, line, name in [(BANK_BOMB, 4, "a0"),
                             ("base: &b {kind: single}\nitem:\n  <<: *b\n", 3, "b"),
                             ("a: 1\nb: &x [1]\nc:\n  - 2\n  - *x\n", 5, "x")]:
        with pytest.raises(yamlio.YamlError) as refused:
            yamlio.load(text)
        assert (refused.value.line, refused.value.key) == (line, "yaml_alias")
        assert refused.value.params == {"name": name}
    assert yamlio.load("a: &x [1]\nb: 2\n") == {"a": [1], "b": 2}
    assert yamlio.load('{"a": [1, {"b": "*x"}]}') == {"a": [1, {"b": "*x"}]}


def test_a_reader_past_its_time_or_memory_budget_is_stopped_with_a_problem():
    from app.bank.parsed import ImportFailed
    from app.bank.reading import ImportOptions
    from app.uploads import read_isolated

    files = {"big.yaml": make_bank(5000).encode()}  # ~3 s and ~200 MB to read
    started = time.monotonic()
    with pytest.raises(ImportFailed) as slow:
        read_isolated("bank", files, source="big.yaml", options=ImportOptions(), seconds=0.5)
    assert time.monotonic() - started < 3
    assert [p.key for p in slow.value.problems] == ["upload_parse_timeout"]
    with pytest.raises(ImportFailed) as greedy:
        read_isolated("bank", files, source="big.yaml", options=ImportOptions(), memory_mb=120)
    assert [p.key for p in greedy.value.problems] == ["upload_parse_memory"]
    assert "120 MB" in greedy.value.problems[0].text("en")
    # Within the default budget the same bank is read: the upload test below stores it.


def test_an_upload_finding_every_reader_busy_is_refused_soon(monkeypatch):
    from app import uploads
    from app.bank.parsed import ImportFailed

    monkeypatch.setattr(uploads, "QUEUE_SECONDS", 0.2)
    held = 0
    try:
        while uploads._slots.acquire(blocking=False):  # noqa: SLF001 - every reader busy
            held += 1
        with pytest.raises(ImportFailed) as busy:
            uploads.read_isolated("blueprint", "code: X\n", source="bp.yaml")
        assert [p.key for p in busy.value.problems] == ["upload_parse_busy"]
    finally:
        for _ in range(held):
            uploads._slots.release()  # noqa: SLF001
    spec, problems = uploads.read_isolated("blueprint", "code: X\n", source="bp.yaml")
    assert spec.code == "X"


# -- through the route, in process -----------------------------------------------------------


def _in_english(client) -> None:
    token = csrf_from(client.get("/admin/banks").text)
    switched = client.post("/lang", data={"lang": "en", "next": "/admin/banks",
                                          "csrf_token": token}, follow_redirects=True)
    assert switched.status_code == 200 and 'lang="en"' in switched.text


@pytest.fixture
def admin(admin):
    """The shared admin client, reading the pages in English."""
    _in_english(admin)
    return admin


def _upload(client, page: str, url: str, name: str, data: bytes):
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token},
                       files={"file": (name, data, "application/octet-stream")},
                       headers={"HX-Request": "true"})


def test_a_bank_alias_bomb_is_refused_quickly_with_the_line_and_the_fix(admin):
    started = time.monotonic()
    answer = _upload(admin, "/admin/banks", "/admin/banks/upload", "bomb.yaml",
                     BANK_BOMB.encode())
    elapsed = time.monotonic() - started
    assert answer.status_code == 422
    assert 'data-testid="problem-table"' in answer.text
    assert "line 4" in answer.text  # the first alias (*a0) is on line 4
    assert "aliases" in answer.text and "in full" in answer.text
    assert elapsed < 3, f"the bomb took {elapsed:.1f} s to refuse"
    assert "BOMB" not in admin.get("/admin/banks").text


def test_a_blueprint_alias_bomb_is_refused_quickly(admin):
    started = time.monotonic()
    answer = _upload(admin, "/admin/blueprints", "/admin/blueprints/upload", "bomb.yaml",
                     BLUEPRINT_BOMB.encode())
    elapsed = time.monotonic() - started
    assert answer.status_code == 422
    assert "line 4" in answer.text and "aliases" in answer.text
    assert elapsed < 3, f"the bomb took {elapsed:.1f} s to refuse"


# -- a real server: taker saves while an admin uploads a large bank ---------------------------


@pytest.fixture
def live(database, settings, make_user, tmp_path):
    """`cact serve` (uvicorn, one worker) on the test's database, with an admin and an open
    session of four takers; yields (base URL, [(nip, token)])."""
    from tests.factories import make_open_session

    make_user("admin", password=PASSWORD)
    with database.transaction() as db:
        _, logins = make_open_session(db, SystemClock(), secret=settings.secret_key,
                                      participants=4)
    env = {**os.environ, "CACT_DATA_DIR": str(tmp_path / "data"),
           "CACT_DATABASE_URL": database.url, "CACT_SECRET_KEY": settings.secret_key}
    proc, base = start_server(env, tmp_path / "server.log")
    try:
        yield base, logins
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class Saver(threading.Thread):
    """One taker answering again and again; records (sent at, latency) of every save."""

    def __init__(self, base: str, nip: str, token: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, timeout=60)
        login = self.client.post("/api/v1/taker/login", json={"nip": nip, "token": token,
                                                              "workstation": f"pc-{nip}"})
        assert login.status_code == 200, login.text
        self.client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        form = self.client.get("/api/v1/taker/attempt").json()
        self.items = [(i["item_id"], [o["id"] for o in i["options"]], i["kind"])
                      for i in form["items"] if i["stem"] is not None]
        self.saves: list[tuple[float, float]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            item_id, options, kind = self.items[seq % len(self.items)]
            seq += 1
            choice = options[seq % len(options)]
            body = {"response": [choice] if kind == "multiple" else choice, "seq": seq}
            sent = time.monotonic()
            answer = self.client.put(f"/api/v1/taker/answers/{item_id}", json=body)
            self.saves.append((sent, time.monotonic() - sent))
            if answer.status_code != 200:
                self.failures.append(f"{answer.status_code} {answer.text[:200]}")
            time.sleep(0.02)
        self.client.close()


def _admin_client(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=300)
    login = staff_login(client, "admin", PASSWORD)
    assert login.status_code in (302, 303), login.text
    _in_english(client)
    return client


def _upload_while_takers_save(base, logins, url, page, name, data):
    """Upload ``data`` while four takers save; returns (upload answer, upload seconds, save
    latencies of saves sent during the upload)."""
    admin = _admin_client(base)
    token = csrf_from(admin.get(page).text)
    savers = [Saver(base, nip, token_) for nip, token_ in logins]
    for saver in savers:
        saver.start()
    time.sleep(0.5)  # saves flowing before the upload starts
    started = time.monotonic()
    answer = admin.post(url, data={"csrf_token": token},
                        files={"file": (name, data, "application/octet-stream")},
                        headers={"HX-Request": "true"})
    ended = time.monotonic()
    time.sleep(0.3)
    for saver in savers:
        saver.stop.set()
    for saver in savers:
        saver.join(60)
    admin.close()
    failures = [f for s in savers for f in s.failures]
    assert not failures, failures[:3]
    during = [latency for s in savers for sent, latency in s.saves
              if sent + latency >= started and sent <= ended]
    return answer, ended - started, during


def test_taker_saves_keep_flowing_while_an_admin_uploads_a_large_bank(live):
    base, logins = live
    data = make_bank(5000).encode()
    answer, upload_s, during = _upload_while_takers_save(
        base, logins, "/admin/banks/upload", "/admin/banks", "bench.yaml", data)
    assert answer.status_code == 200 and "BENCH" in answer.text, answer.text[-2000:]
    worst = max(during)
    print(f"\nupload {upload_s:.2f} s, {len(during)} saves during it, "
          f"worst {worst * 1000:.0f} ms")
    assert len(during) >= 20, "the takers hardly saved during the upload"
    # Before the fix the loop was blocked for the whole parse: the worst save waited about as
    # long as the upload itself. Now it waits at most for the store's own write.
    assert worst < max(1.0, 0.35 * upload_s), (worst, upload_s)


def test_taker_saves_keep_flowing_while_an_admin_uploads_an_alias_bomb(live):
    base, logins = live
    answer, upload_s, during = _upload_while_takers_save(
        base, logins, "/admin/banks/upload", "/admin/banks", "bomb.yaml", BANK_BOMB.encode())
    assert answer.status_code == 422 and "aliases" in answer.text
    worst = max(during)
    print(f"\nbomb refused in {upload_s:.2f} s, worst save {worst * 1000:.0f} ms")
    assert upload_s < 5 and worst < 1.5, (upload_s, worst)


def _roster_csv(rows: int) -> bytes:
    lines = ["nip,nama,kelompok_jabatan,jabatan,unit_kerja,kursi"]
    lines += [f"19790101200501{n:04d},Peserta Nomor {n},pengawas,Pengawas Penyelenggaraan,"
              f"Biro Umum dan Keuangan,PC-{n:04d}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_taker_saves_keep_flowing_while_an_admin_uploads_a_large_roster(live):
    """Storing 5,000 roster rows with their tokens takes a second or more; not in the event
    loop. PostgreSQL only: on SQLite the import's transaction holds the one write lock, so
    saves queue behind it for that long whatever the loop does."""
    base, logins = live
    answer, upload_s, during = _upload_while_takers_save(
        base, logins, "/admin/sessions/S1/roster", "/admin/sessions/S1", "roster.csv",
        _roster_csv(5000))
    assert answer.status_code == 200 and "5000" in answer.text, answer.text[-2000:]
    worst = max(during)
    print(f"\nroster upload {upload_s:.2f} s, {len(during)} saves during it, "
          f"worst {worst * 1000:.0f} ms")
    assert len(during) >= 10, "the takers hardly saved during the upload"
    assert worst < max(1.0, 0.5 * upload_s), (worst, upload_s)
