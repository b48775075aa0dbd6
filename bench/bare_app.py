"""The reference endpoints: a minimal FastAPI app that writes one SQLite row per request with the
same durability settings as the CACT server (WAL, synchronous=FULL), one that returns a
stored form (the JSON of a real 112-item form, read once from CACT_BARE_FORM): the physical
limit of "deliver a form" on this machine, and a login that checks nothing and stores nothing
(it validates the same JSON body and answers a random access token): with the stored form
after it, the two requests of a taker's start doing no work at all. bench/autosave.py serves
it with the same uvicorn settings and reports the autosave throughput and the session start as
ratios of these.

    uvicorn bench.bare_app:app --port 8099   (CACT_BARE_DB=/tmp/bare.sqlite3)
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
import threading

from fastapi import FastAPI, Response
from pydantic import BaseModel

DB_PATH = os.environ.get(
    "CACT_BARE_DB", os.path.join(tempfile.gettempdir(), "cact-bare.sqlite3"))
_local = threading.local()


def connection() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB_PATH, timeout=10, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS saves (id INTEGER PRIMARY KEY, taker INTEGER, "
                     "item INTEGER, response TEXT, seq INTEGER)")
        _local.conn = conn
    return conn


class Save(BaseModel):
    taker: int
    item: int
    response: int | None
    seq: int


app = FastAPI()


_FORM: list[bytes] = []


@app.get("/bare-form")
def bare_form() -> Response:
    if not _FORM:
        path = os.environ.get("CACT_BARE_FORM", "")
        _FORM.append(open(path, "rb").read() if path else b"{}")  # noqa: SIM115
    return Response(_FORM[0], media_type="application/json")


class Login(BaseModel):
    nip: str
    token: str
    workstation: str | None = None


@app.post("/bare-login")
def bare_login(body: Login) -> dict:
    return {"attempt_id": int(body.nip), "access_token": secrets.token_urlsafe(32),
            "state": "not_started", "session_code": "BARE"}


@app.put("/bare")
def bare(body: Save) -> dict:
    conn = connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO saves (taker, item, response, seq) VALUES (?, ?, ?, ?)",
                 (body.taker, body.item, body.response, body.seq))
    conn.execute("COMMIT")
    return {"stored_seq": body.seq}
