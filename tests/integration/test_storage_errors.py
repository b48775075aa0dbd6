"""A database that cannot store (here: SQLite held locked past the busy timeout by another
program) never loses an answer silently: the save is refused with 503 and a code the page
understands (it keeps the answer in its journal, says so, and sends it again), the proctor
console shows an alert line, and the same save lands once the database is free."""

from __future__ import annotations

import shutil
import sqlite3

from fastapi.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.settings import Settings
from tests.conftest import FAST_ARGON2, staff_login
from tests.factories import make_open_session


def test_a_locked_database_is_a_503_and_an_alert_then_the_save_lands(
        sqlite_template, tmp_path, clock):
    path = tmp_path / "cact.sqlite3"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}", busy_timeout_ms=200)
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url,
                        secret_key="t" * 48, **FAST_ARGON2)
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret())
    from app.auth import service
    from app.auth.models import Role
    from app.auth.security import settings_hasher

    with database.transaction() as db:
        service.create_user(db, hasher=settings_hasher(settings), username="admin",
                            password="correct-horse-1", role=Role.admin, actor="t",
                            now=clock.now())
    app = create_app(settings, clock=clock, database=database)
    admin = TestClient(app)  # requests only; the app's lifespan runs with the taker's client
    with TestClient(app) as taker:
        login = taker.post("/api/v1/taker/login", json={"nip": logins[0][0],
                                                        "token": logins[0][1]})
        taker.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        item = taker.get("/api/v1/taker/attempt").json()["items"][0]
        option = item["options"][0]["id"]
        body = {"response": [option] if item["kind"] == "multiple" else option, "seq": 1}
        staff_login(admin, "admin", "correct-horse-1")
        assert 'data-testid="storage-alert"' not in admin.get("/proctor/sessions/S1/grid").text

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
