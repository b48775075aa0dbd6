"""Property-based tests of the JSON API from its own OpenAPI document (Schemathesis): for the
taker API (with a real bearer token, so requests get past authentication) and the proctor
API (with an admin's session cookie and X-CSRF-Token), generated requests - valid and invalid -
must never cause a server error, and every answer must match the documented status codes,
content types and response schemas.

In process and bounded (a few dozen examples per operation, derandomized so a run is
repeatable); SQLite only: the point is the API's contract, which does not depend on the
database.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.specs.openapi import checks as openapi_checks  # noqa: E402

from app.sessions.models import RosterEntry  # noqa: E402
from tests.conftest import csrf_from, staff_login  # noqa: E402
from tests.factories import make_open_session  # noqa: E402

MAX_EXAMPLES = 25
CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _send(client: TestClient, case, headers: dict[str, str]):
    """The case as one request through the app's own test client (in process)."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"),
                                      headers=headers)
    request = {"method": kwargs["method"], "url": kwargs["url"],
               "headers": kwargs.get("headers"), "params": kwargs.get("params"),
               "follow_redirects": False}
    if kwargs.get("cookies"):  # generated cookie parameters (none are documented today)
        client.cookies.update(kwargs["cookies"])
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content" if isinstance(data, (bytes, str)) else "data"] = data
    return client.request(**request)


def _fuzz(client: TestClient, app, path_regex: str, headers: dict[str, str],
          fixed_paths: dict[str, object] | None = None, checks=tuple(CHECKS)) -> list[str]:
    """Run every operation under ``path_regex``; the first failure raises (shrunk by
    Hypothesis to a small example, with a curl command to reproduce it)."""
    schema = schemathesis.openapi.from_dict(app.openapi()).include(path_regex=path_regex)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, path_regex
    tried: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy()

        @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                             database=None, phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            if fixed_paths and case.path_parameters:
                case.path_parameters.update({k: v for k, v in fixed_paths.items()
                                             if k in case.path_parameters})
            response = _send(client, case, headers)
            case.validate_response(response, checks=list(checks))

        run()
        tried.append(operation.label)
    return tried


def test_the_taker_api_keeps_its_contract(app, database, settings, clock):
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                      participants=2)
    with TestClient(app) as client:
        login = client.post("/api/v1/taker/login", json={"nip": logins[0][0],
                                                         "token": logins[0][1]})
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        tried = _fuzz(client, app, r"^/api/v1/taker/(?!logout)", headers)
        tried += _fuzz(client, app, r"^/api/v1/taker/logout", headers)  # last: ends the token
    assert len(tried) == 7, tried


def test_the_proctor_api_keeps_its_contract(app, database, settings, clock, make_user):
    with database.transaction() as db:
        session, _ = make_open_session(db, clock, secret=settings.resolved_secret(),
                                       participants=2, code="RUANG-A")
        entry = db.scalar(select(RosterEntry.id).where(RosterEntry.session_id == session.id)
                          .limit(1))
    with TestClient(app) as client:
        staff_login(client, "admin", make_user("admin"))
        headers = {"X-CSRF-Token": csrf_from(client.get("/admin/sessions").text)}
        # Half the cases aim at the real session and seat, so the handlers run past
        # "not found" too; the rest keep the generated (mostly unknown) values.
        checks = CHECKS
        tried = _fuzz(client, app, r"^/api/v1/proctor/", headers, checks=checks)
        tried += _fuzz(client, app, r"^/api/v1/proctor/", headers, checks=checks,
                       fixed_paths={"code": "RUANG-A"})
        tried += _fuzz(client, app, r"^/api/v1/proctor/", headers, checks=checks,
                       fixed_paths={"code": "RUANG-A", "entry_id": entry})
    assert len(tried) == 6, tried


def test_the_proctor_api_documents_its_refusals(app):
    paths = app.openapi()["paths"]
    for path, operations in paths.items():
        if path.startswith("/api/v1/proctor/"):
            for operation in operations.values():
                assert {"401", "403", "404"} <= set(operation["responses"]), path


# -- found by the fuzzer: ids beyond the database's integer range -------------------------------

HUGE = ("99999999999999999999", "9999999999")  # past SQLite's 2**63; past PostgreSQL's int4


def test_out_of_range_ids_on_taker_routes_are_422_not_500(app, database, settings, clock):
    """Regression: PUT /api/v1/taker/answers/{huge} was a 500 (SQLite cannot bind an integer
    past 2**63; PostgreSQL's integer columns end at 2**31-1). Path ids are now bounded."""
    with database.transaction() as db:
        _, logins = make_open_session(db, clock, secret=settings.resolved_secret())
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/")
        client.post("/ujian/masuk", data={"nip": logins[0][0], "token": logins[0][1],
                                          "csrf_token": csrf_from(page.text)})
        csrf = csrf_from(client.get("/ujian").text)
        bearer = {"Authorization": f"Bearer {client.cookies['cact_taker']}"}
        for huge in HUGE:
            api = client.put(f"/api/v1/taker/answers/{huge}", headers=bearer,
                             json={"response": None, "seq": 1})
            page_save = client.put(f"/ujian/jawaban/{huge}", headers={"X-CSRF-Token": csrf},
                                   json={"response": None, "seq": 1})
            media = client.get(f"/ujian/media/{huge}/fig1.svg")
            assert (api.status_code, page_save.status_code, media.status_code) == \
                (422, 422, 422), huge


def test_out_of_range_ids_on_staff_routes_are_not_500(app, database, settings, clock,
                                                      make_user):
    with database.transaction() as db:
        make_open_session(db, clock, secret=settings.resolved_secret(), code="RUANG-A")
    with TestClient(app, raise_server_exceptions=False) as client:
        staff_login(client, "admin", make_user("admin"))
        csrf = csrf_from(client.get("/admin/sessions").text)
        statuses = {}
        for huge in HUGE:
            statuses[f"api seat {huge}"] = client.post(
                f"/api/v1/proctor/sessions/RUANG-A/seats/{huge}", headers={"X-CSRF-Token": csrf},
                json={"action": "note", "reason": "x"}).status_code
            for path in (f"/admin/items/{huge}", f"/media/{huge}/x.svg",
                         f"/admin/analysis/{huge}"):
                statuses[path] = client.get(path).status_code
        assert all(status < 500 for status in statuses.values()), statuses


# -- number edge cases: huge and non-finite numbers in every field (security review #13) --------

# Written into the request text as they are: 1e999 and -1e999 parse to infinities, NaN and
# Infinity are what Python's JSON reader accepts besides; the rest are past every integer column.
EDGE_NUMBERS = ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", "18446744073709551616",
                "-9223372036854775809", "1.7976931348623157e308", "1e-400",
                "123456789012345678901234567890")


def _edge_json(value, edge: str) -> str:
    """The generated JSON body with every scalar replaced by ``edge`` (as raw JSON text)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_edge_json(v, edge)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_edge_json(v, edge) for v in value) + "]"
    return edge


def _fuzz_edges(client: TestClient, app, path_regex: str, headers: dict[str, str],
                fixed_paths: dict[str, object] | None = None) -> list[str]:
    """Every operation under ``path_regex`` with generated requests whose body, query and
    path values are all replaced by one of EDGE_NUMBERS: never a 5xx."""
    schema = schemathesis.openapi.from_dict(app.openapi()).include(path_regex=path_regex)
    tried: list[str] = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                             database=None, phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), edge=st.sampled_from(EDGE_NUMBERS))
        def run(case, edge):
            if case.path_parameters:
                case.path_parameters = {k: (fixed_paths or {}).get(k, edge)
                                        for k in case.path_parameters}
            kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"),
                                              headers=headers)
            request = {"method": kwargs["method"], "url": kwargs["url"],
                       "headers": {**(kwargs.get("headers") or {}),
                                   "Content-Type": "application/json"},
                       "params": dict.fromkeys(kwargs.get("params") or {}, edge),
                       "follow_redirects": False}
            body = kwargs.get("json", {"value": 1})
            if kwargs["method"] not in ("GET", "HEAD", "DELETE"):
                request["content"] = _edge_json(body, edge)
            response = client.request(**request)
            assert response.status_code < 500, (request, response.status_code, response.text)

        run()
        tried.append(operation.label)
    return tried


def test_huge_and_non_finite_numbers_never_cause_a_server_error(app, database, settings, clock,
                                                                make_user):
    with database.transaction() as db:
        session, logins = make_open_session(db, clock, secret=settings.resolved_secret(),
                                            participants=2, code="RUANG-A")
        entry = db.scalar(select(RosterEntry.id).where(RosterEntry.session_id == session.id)
                          .limit(1))
    with TestClient(app, raise_server_exceptions=False) as client:
        # The review's two cases, by hand first.
        login = client.post("/api/v1/taker/login", content='{"nip": 1e999, "token": null}',
                            headers={"Content-Type": "application/json"})
        assert login.status_code == 422, login.text
        ok = client.post("/api/v1/taker/login", json={"nip": logins[0][0],
                                                      "token": logins[0][1]})
        taker = {"Authorization": f"Bearer {ok.json()['access_token']}"}
        save = client.put("/api/v1/taker/answers/1", content='{"response": 1e999, "seq": 1}',
                          headers={**taker, "Content-Type": "application/json"})
        assert save.status_code in (404, 422), save.text
        tried = _fuzz_edges(client, app, r"^/api/v1/taker/(?!logout)", taker)
        tried += _fuzz_edges(client, app, r"^/api/v1/taker/logout", taker)
        staff_login(client, "admin", make_user("admin"))
        staff = {"X-CSRF-Token": csrf_from(client.get("/admin/sessions").text)}
        tried += _fuzz_edges(client, app, r"^/api/v1/proctor/", staff)
        tried += _fuzz_edges(client, app, r"^/api/v1/proctor/", staff,
                             fixed_paths={"code": "RUANG-A", "entry_id": entry})
    assert len(tried) == 11, tried
