"""A database that cannot store (SQLite held locked past the busy timeout by another program,
or a full disk) never loses an answer silently: the save is refused with 503 and a code the page
understands (it keeps the answer in its journal, says so, and sends it again), the proctor
console shows an alert line, and the same save lands once the database is free."""

from __future__ import annotations

import re
import shutil
import sqlite3

from fastapi.testclient import TestClient
from sqlalchemy import event, select

from app.db import Database
from app.main import create_app
from app.settings import Settings
from tests.conftest import FAST_ARGON2, csrf_from, staff_login
from tests.factories import make_open_session


def test_a_locked_database_is_a_503_and_an_alert_then_the_save_lands(
        sqlite_template, tmp_path, clock):
    path, database, app, logins = _world(sqlite_template, tmp_path, clock)
    admin = TestClient(app)  # requests only; the app's lifespan runs with the taker's client
    with TestClient(app) as taker:
        item, response = _first_item_and_no_alert(taker, admin, logins)
        body = {"response": response, "seq": 1}

        other_program = sqlite3.connect(path, isolation_level=None)
        other_program.execute("BEGIN IMMEDIATE")  # holds the write lock
        try:
            refused = taker.put(f"/api/v1/taker/answers/{item['item_id']}", json=body)
            assert refused.status_code == 503
            assert refused.json()["code"] == "taker.error_storage"
            assert refused.headers["retry-after"] == "2"
            grid = admin.get("/proctor/sessions/S1/grid").text
            assert 'data-testid="storage-alert"' in grid and "locked" in grid
        finally:
            other_program.execute("ROLLBACK")
            other_program.close()
        stored = taker.put(f"/api/v1/taker/answers/{item['item_id']}", json=body)
        assert stored.status_code == 200 and stored.json()["stored_seq"] == 1
    database.dispose()


# -- a full disk ---------------------------------------------------------------------------------
#
# The disk is made full by SQLite itself: ``PRAGMA max_page_count`` set to the database's page
# count on every connection the app opens, so no write may add a page. A write that needs one
# then fails with SQLITE_FULL, "database or disk is full": the very error (and the very code
# path in SQLite: a page cannot be allocated) of a disk with no room left. It is portable (no
# root, no mount) and exact, and WAL mode does not get in the way: SQLite checks the limit when
# it allocates a page, wherever the page is then written (the drill checks that the error seen
# is SQLITE_FULL). What it does not refuse is a write that fits into room left on the pages
# the database already has (a save updates the answer in place, and its history row often fits
# on the last page of answer_events), just as a real full disk would not. So the taker goes on
# answering, as in a real exam, until the save that needs a new page is refused; every save
# appends a history row, so that comes within a page's worth of saves (about 100 here).
# (A tiny tmpfs, `mount -t tmpfs -o size=...`, needs root and a mount, which CI does not give;
# and a write into file space SQLite already has, such as a WAL restarted after a checkpoint,
# would not notice a full filesystem at all, so the moment of the refusal would be less sure.)

MAX_SAVES = 2000  # far more than one page of answer_events: the disk must be full long before


class _FullDisk:
    """Every connection the app opens from ``fill()`` on may not grow the database; ``free()``
    lifts that for connections opened afterwards. The SQLite errors seen are kept, to prove
    that what refused the save was a full disk (SQLITE_FULL) and nothing else."""

    def __init__(self, database: Database, path) -> None:
        self.engine = database.engine
        probe = sqlite3.connect(path)
        self.pages = probe.execute("PRAGMA page_count").fetchone()[0]
        probe.close()
        self.limits: list[int] = []
        self.errors: list[BaseException] = []

    def _limit(self, dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        self.limits.append(cursor.execute(f"PRAGMA max_page_count={self.pages}").fetchone()[0])
        cursor.close()

    def _seen(self, context) -> None:
        self.errors.append(context.original_exception)

    def fill(self) -> None:
        event.listen(self.engine, "connect", self._limit)
        event.listen(self.engine, "handle_error", self._seen)
        self.engine.dispose()  # every connection from now on is opened with the limit

    def free(self) -> None:
        event.remove(self.engine, "connect", self._limit)
        self.engine.dispose()  # the limited connections are closed; new ones may grow

    def sqlite_full_seen(self) -> bool:
        return any(getattr(e, "sqlite_errorname", "") == "SQLITE_FULL"
                   and "database or disk is full" in str(e) for e in self.errors)


def _world(sqlite_template, tmp_path, clock):
    """A real SQLite file with an open session S1 and an admin; the app over it."""
    from app.auth import service
    from app.auth.models import Role
    from app.auth.security import settings_hasher

    path = tmp_path / "cact.sqlite3"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}", busy_timeout_ms=200)
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url,
                        secret_key="t" * 48, **FAST_ARGON2)
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret())
        service.create_user(db, hasher=settings_hasher(settings), username="admin",
                            password="correct-horse-1", role=Role.admin, actor="t",
                            now=clock.now())
    return path, database, create_app(settings, clock=clock, database=database), logins


def _first_item_and_no_alert(taker, admin, logins) -> tuple[dict, object]:
    """The first participant logs in through the API and gets the form; the admin's console
    shows no storage alert yet. Returns the first item and an answer to it."""
    login = taker.post("/api/v1/taker/login", json={"nip": logins[0][0], "token": logins[0][1]})
    taker.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    item = taker.get("/api/v1/taker/attempt").json()["items"][0]
    option = item["options"][0]["id"]
    staff_login(admin, "admin", "correct-horse-1")
    assert 'data-testid="storage-alert"' not in admin.get("/proctor/sessions/S1/grid").text
    return item, [option] if item["kind"] == "multiple" else option


def _save_until_refused(save, body: dict) -> tuple[int, object]:
    """The taker keeps changing the answer (seq 1, 2, ...) until a save is not stored."""
    for seq in range(1, MAX_SAVES + 1):
        response = save({**body, "seq": seq})
        if response.status_code != 200:
            return seq, response
        assert response.json()["stored_seq"] == seq
    raise AssertionError(f"{MAX_SAVES} saves all stored: the disk never got full")


def _stored(database: Database, item_id: int) -> tuple[int | None, list[int], list[int]]:
    """What the database holds for this item: the answer's seq, the history's seqs, and the
    attempts' last_seq (one taker saves in these tests)."""
    from app.delivery.models import Answer, AnswerEvent, Attempt

    with database.transaction(write=False) as db:
        seq = db.scalar(select(Answer.seq).where(Answer.item_id == item_id))
        history = list(db.scalars(select(AnswerEvent.seq).where(AnswerEvent.item_id == item_id)
                                  .order_by(AnswerEvent.seq)))
        last = list(db.scalars(select(Attempt.last_seq).where(Attempt.last_seq > 0)))
    return seq, history, last


STORAGE_ALERT = re.compile(r'data-testid="storage-alert">([^<]*)</p>')


def test_a_full_disk_is_a_503_and_an_alert_then_the_same_save_lands(
        sqlite_template, tmp_path, clock):
    path, database, app, logins = _world(sqlite_template, tmp_path, clock)
    admin = TestClient(app)  # requests only; the app's lifespan runs with the taker's client
    with TestClient(app) as taker:
        item, response = _first_item_and_no_alert(taker, admin, logins)

        disk = _FullDisk(database, path)
        disk.fill()
        seq, refused = _save_until_refused(
            lambda body: taker.put(f"/api/v1/taker/answers/{item['item_id']}", json=body),
            {"response": response})
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "taker.error_storage"
        assert refused.headers["retry-after"] == "2"
        assert disk.limits and set(disk.limits) == {disk.pages}  # the app's connections
        assert disk.sqlite_full_seen(), disk.errors  # it was the full disk that refused it
        grid = admin.get("/proctor/sessions/S1/grid").text
        alert = STORAGE_ALERT.search(grid)
        assert alert, "no storage alert in the proctor console"
        assert "database or disk is full" in alert.group(1), alert.group(1)  # the real reason
        # Nothing half-written: neither the answer, nor its history, nor the attempt's seq.
        before = seq - 1
        assert _stored(database, item["item_id"]) == (
            before or None, list(range(1, seq)), [before] if before else [])
        again = taker.put(f"/api/v1/taker/answers/{item['item_id']}",
                          json={"response": response, "seq": seq})
        assert again.status_code == 503  # still full: still refused, never dropped

        disk.free()
        stored = taker.put(f"/api/v1/taker/answers/{item['item_id']}",
                           json={"response": response, "seq": seq})
        assert stored.status_code == 200, stored.text
        assert stored.json()["stored_seq"] == seq and stored.json()["accepted"] is True
        assert _stored(database, item["item_id"]) == (seq, list(range(1, seq + 1)), [seq])
        from app.delivery.models import Answer, AttemptItem

        with database.transaction(write=False) as db:  # stored as the option's real id
            shown = db.scalar(select(AttemptItem.option_order)
                              .where(AttemptItem.item_id == item["item_id"]))
            real = ([shown[r - 1] for r in response] if isinstance(response, list)
                    else shown[response - 1])
            assert db.scalar(select(Answer.response)
                             .where(Answer.item_id == item["item_id"])) == real
    database.dispose()


def test_the_page_gets_the_storage_code_on_a_full_disk_and_says_so(
        sqlite_template, tmp_path, clock):
    """The taker page saves through /ujian/jawaban; its script shows the banner's data-storage
    message on a 503 and keeps the answer in its journal to send again."""
    path, database, app, logins = _world(sqlite_template, tmp_path, clock)
    with TestClient(app) as page:
        nip, token = logins[0]
        login = page.post("/ujian/masuk", data={"nip": nip, "token": token,
                                                "csrf_token": csrf_from(page.get("/").text)},
                          follow_redirects=False)
        assert login.status_code == 303, login.text
        instructions = page.get("/ujian")
        item_page = page.post("/ujian/mulai",
                              data={"csrf_token": csrf_from(instructions.text)}).text
        csrf = csrf_from(item_page)
        item_id = int(item_page.split('data-item="')[1].split('"')[0])
        assert ('data-storage="Server belum dapat menyimpan jawaban saat ini - jawaban disimpan '
                'di komputer ini dan akan dikirim otomatis. Beri tahu pengawas jika ini '
                'berlangsung lama."') in item_page
        from app.bank.models import Item

        with database.transaction(write=False) as db:
            kind = db.scalar(select(Item.kind).where(Item.id == item_id)).value
        option = 1  # the first option shown: the page names options by their place
        response = [option] if kind == "multiple" else option
        headers = {"X-CSRF-Token": csrf, "X-Save-Failures": "0"}  # as the page's script sends

        disk = _FullDisk(database, path)
        disk.fill()
        seq, refused = _save_until_refused(
            lambda body: page.put(f"/ujian/jawaban/{item_id}", json=body, headers=headers),
            {"response": response, "flagged": False})
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "taker.error_storage"
        assert refused.headers["retry-after"] == "2"
        assert disk.sqlite_full_seen(), disk.errors
        assert _stored(database, item_id)[0] == (seq - 1 or None)

        disk.free()
        stored = page.put(f"/ujian/jawaban/{item_id}", headers={**headers, "X-Save-Failures": "1"},
                          json={"response": response, "flagged": False, "seq": seq})
        assert stored.status_code == 200 and stored.json()["stored_seq"] == seq
        assert _stored(database, item_id)[0] == seq

        english = page.post("/lang", data={"lang": "en", "next": "/ujian/soal/1",
                                           "csrf_token": csrf})
        assert 'lang="en"' in english.text
        assert ('data-storage="The server cannot store answers right now - they are kept on '
                'this computer and will be sent automatically. Tell the proctor if this '
                'lasts."') in english.text
    database.dispose()
