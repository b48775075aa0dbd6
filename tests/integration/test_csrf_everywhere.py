"""Every state-changing route that a browser can reach with a cookie refuses a request without
the CSRF token (or with another session's), whoever is logged in, and changes nothing. The
list comes from the app's route table, so a new route is covered the day it is added. Only
the taker API is exempt: it takes bearer tokens, never cookies."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.audit import AuditEvent
from app.main import api_routes
from app.web import BEARER_API_PREFIXES
from tests.conftest import csrf_from

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def unsafe_routes():
    for route in api_routes():
        for method in sorted(route.methods & UNSAFE):
            if not route.path.startswith(BEARER_API_PREFIXES):
                yield method, re.sub(r"\{[^}]+\}", "1", route.path)


def test_every_cookie_route_needs_the_csrf_token(admin, database):
    client = admin
    own = csrf_from(client.get("/admin").text)
    with database.transaction(write=False) as db:
        before = db.scalar(select(func.count()).select_from(AuditEvent))
    checked = []
    for method, path in unsafe_routes():
        for token in ("", "x" * 43):  # none, and a token that is not this session's
            headers = {"X-CSRF-Token": token} if token else {}
            response = client.request(method, path, data={"csrf_token": token} if token else {},
                                      headers=headers, follow_redirects=False)
            assert response.status_code == 403, (method, path, token, response.status_code)
        checked.append(path)
    assert len(checked) >= 30, checked
    with database.transaction(write=False) as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert client.post("/logout", data={"csrf_token": own},
                       follow_redirects=False).status_code == 303  # the real token works
